//! The model's source files: finding them, reading them, and turning byte offsets into lines and columns.

use std::path::{Path, PathBuf};

/// The suffix every model file carries.
pub const MODEL_SUFFIX: &str = ".ds.hcl";

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// One model file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as shown to users: relative to the model directory when found by [`read_dir`].
    pub name: String,
    /// The full path on disk (or the name, for in-memory sources).
    pub path: PathBuf,
    /// The file's text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// A source file from text.
    pub fn new(name: impl Into<String>, path: PathBuf, text: String) -> SourceFile {
        let line_starts = std::iter::once(0).chain(memchr_newlines(&text)).collect();
        SourceFile {
            name: name.into(),
            path,
            text,
            line_starts,
        }
    }

    /// The one-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self.text[start..floor_char_boundary(&self.text, offset)]
            .chars()
            .count();
        (line + 1, column + 1)
    }

    /// The byte offset of a one-based line and column (in characters); clamped to the file.
    pub fn offset(&self, line: usize, column: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        self.text[start..]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(self.text.len(), |(i, _)| start + i)
    }
}

fn memchr_newlines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes()
        .enumerate()
        .filter(|&(_, b)| b == b'\n')
        .map(|(i, _)| i + 1)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// All files of a model, sorted by path.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    /// Sources from in-memory files, kept in the given order (tests and `git`-read models use this).
    pub fn from_files(files: Vec<SourceFile>) -> Sources {
        Sources { files }
    }

    /// A file by id.
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// Every file with its id.
    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    /// The number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Why a model directory could not be read. These are not model problems (those are diagnostics): they stop
/// the command before any model is loaded.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The directory given with `-C` does not exist.
    #[error("model directory `{0}` does not exist")]
    NotFound(PathBuf),
    /// The path given with `-C` is a file.
    #[error("`{0}` is not a directory")]
    NotADirectory(PathBuf),
    /// No `*.ds.hcl` file anywhere under the directory.
    #[error("no model files (`*{MODEL_SUFFIX}`) found under `{0}`")]
    Empty(PathBuf),
    /// A model file is not UTF-8.
    #[error("model file `{path}` is not valid UTF-8 (line {line}): save it as UTF-8")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The one-based line of the first invalid byte.
        line: usize,
    },
    /// The file system refused.
    #[error("failed to read `{path}`")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Finds every `*.ds.hcl` file under `dir` (recursively, sorted by path, hidden directories skipped) and
/// reads it.
pub fn read_dir(dir: &Path) -> Result<Sources, ReadError> {
    let meta = std::fs::metadata(dir).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ReadError::NotFound(dir.to_path_buf())
        } else {
            ReadError::Io {
                path: dir.to_path_buf(),
                source,
            }
        }
    })?;
    if !meta.is_dir() {
        return Err(ReadError::NotADirectory(dir.to_path_buf()));
    }
    let mut paths = Vec::new();
    collect_model_paths(dir, &mut paths)?;
    if paths.is_empty() {
        return Err(ReadError::Empty(dir.to_path_buf()));
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|source| ReadError::Io {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|err| {
            let valid = err.utf8_error().valid_up_to();
            let line = err.as_bytes()[..valid]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            ReadError::NotUtf8 {
                path: path.clone(),
                line,
            }
        })?;
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        files.push(SourceFile::new(name, path, text));
    }
    Ok(Sources { files })
}

fn collect_model_paths(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReadError> {
    let io = |source| ReadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let file_type = entry.file_type().map_err(io)?;
        if file_type.is_dir() {
            if !name.starts_with('.') {
                collect_model_paths(&entry.path(), out)?;
            }
        } else if name.ends_with(MODEL_SUFFIX) {
            out.push(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let file = SourceFile::new("a", PathBuf::from("a"), "ab\nçd = 1\n".to_string());
        assert_eq!(file.line_col(0), (1, 1));
        assert_eq!(file.line_col(3), (2, 1));
        // `d` follows a two-byte character: byte 5, column 2.
        assert_eq!(file.line_col(5), (2, 2));
        assert_eq!(file.offset(2, 2), 5);
        assert_eq!(file.line_col(100), (3, 1));
    }
}
