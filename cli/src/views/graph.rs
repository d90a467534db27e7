//! `ds graph`: the resource graph as Graphviz DOT or a Mermaid flowchart.

use planner::compile::Graph;

/// DOT, one node per resource (grouped in a cluster per provider) and an edge per dependency.
pub(crate) fn dot(graph: &Graph) -> String {
    let mut out = String::from(
        "digraph ds {\n  rankdir = LR;\n  node [shape = box, fontname = \"monospace\"];\n",
    );
    let mut providers: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for resource in graph.resources() {
        providers
            .entry(resource.kind.provider())
            .or_default()
            .push(&resource.address);
    }
    for (provider, addresses) in &providers {
        out.push_str(&format!(
            "  subgraph \"cluster_{provider}\" {{\n    label = \"{provider}\";\n"
        ));
        for address in addresses {
            out.push_str(&format!("    \"{address}\";\n"));
        }
        out.push_str("  }\n");
    }
    for resource in graph.resources() {
        for dep in &resource.dependencies {
            out.push_str(&format!("  \"{dep}\" -> \"{}\";\n", resource.address));
        }
    }
    out.push_str("}\n");
    out
}

/// A Mermaid flowchart; node ids are positions, labels the addresses.
pub(crate) fn mermaid(graph: &Graph) -> String {
    let mut out = String::from("flowchart LR\n");
    let ids: std::collections::HashMap<&str, usize> = graph
        .resources()
        .enumerate()
        .map(|(i, r)| (r.address.as_str(), i))
        .collect();
    for (i, resource) in graph.resources().enumerate() {
        out.push_str(&format!("  n{i}[\"{}\"]\n", resource.address));
    }
    for resource in graph.resources() {
        for dep in &resource.dependencies {
            out.push_str(&format!(
                "  n{} --> n{}\n",
                ids[dep.as_str()],
                ids[resource.address.as_str()]
            ));
        }
    }
    out
}
