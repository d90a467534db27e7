//! Physical names: identifiers as PostgreSQL will hold them.

/// PostgreSQL's identifier limit, in bytes.
pub const MAX_IDENTIFIER: usize = 63;

/// The identifier for `name`: itself when it fits in 63 bytes, otherwise cut and given a short hash suffix
/// of the whole name (`<first 54 bytes>_<8 hex digits>`), so that two long names differing only at the end
/// stay distinct and the result is the same on every run.
pub fn identifier(name: &str) -> String {
    if name.len() <= MAX_IDENTIFIER {
        return name.to_string();
    }
    let suffix = format!("_{:08x}", fnv1a64(name.as_bytes()) as u32);
    let mut cut = MAX_IDENTIFIER - suffix.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &name[..cut])
}

/// FNV-1a, 64 bits: small, stable across platforms and versions (never change it: names depend on it).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_ones_cut_with_a_stable_hash() {
        assert_eq!(
            identifier("crm_db__customers__merge"),
            "crm_db__customers__merge"
        );
        let exact = "a".repeat(63);
        assert_eq!(identifier(&exact), exact);
        let long_a = format!("{}__a", "x".repeat(70));
        let long_b = format!("{}__b", "x".repeat(70));
        let (a, b) = (identifier(&long_a), identifier(&long_b));
        assert_eq!(a.len(), 63);
        assert_ne!(a, b);
        assert_eq!(a, identifier(&long_a));
        assert!(a.starts_with(&"x".repeat(54)));
        // The hash is part of the physical contract: pin one value.
        // The hash is part of the physical contract: pin it to the FNV-1a test vector.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
