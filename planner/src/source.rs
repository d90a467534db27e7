//! The model's source files: finding them, reading them, and turning byte offsets into lines and columns.

use std::path::{Component, Path, PathBuf};

use git2::{ObjectType, Oid, Repository, Tree, TreeEntry};

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
    /// [`read_git`]: no git repository holds the directory.
    #[error(
        "`{0}` is not inside a git repository: run ds from a clone, or give -C a directory of one"
    )]
    NotARepository(PathBuf),
    /// [`read_git`]: the revision names nothing in the repository (often: a shallow clone has not fetched it).
    #[error(
        "revision `{rev}` is not in the repository at `{repo}`: fetch it first (e.g. `git fetch origin {rev}`, \
         or `git fetch --unshallow` in a shallow clone)"
    )]
    RevisionNotFound {
        /// The revision as given.
        rev: String,
        /// The repository's working tree (or git directory, if bare).
        repo: PathBuf,
    },
    /// [`read_git`]: at the revision, the directory does not exist or holds no `*.ds.hcl` file.
    #[error(
        "no model files (`*{MODEL_SUFFIX}`) under `{dir}` at revision `{rev}`: check the revision, and that -C \
         names the model directory"
    )]
    NoModelAtRevision {
        /// The revision as given.
        rev: String,
        /// The model directory as given.
        dir: PathBuf,
    },
    /// [`read_git`]: any other failure of libgit2 (the message includes libgit2's).
    #[error("cannot read the model from git: {message}")]
    Git {
        /// What failed, with libgit2's message.
        message: String,
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
        let text = utf8_text(bytes, &path)?;
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        files.push(SourceFile::new(name, path, text));
    }
    Ok(Sources { files })
}

/// The text of a model file, or [`ReadError::NotUtf8`] with the line of the first invalid byte.
fn utf8_text(bytes: Vec<u8>, path: &Path) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|err| {
        let valid = err.utf8_error().valid_up_to();
        let line = err.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        ReadError::NotUtf8 {
            path: path.to_path_buf(),
            line,
        }
    })
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

/// Reads the model in `dir` as it is at revision `rev` of the git repository holding `dir`, straight from git's
/// objects: the working tree and the index are not looked at, so uncommitted changes do not show, and `dir` need
/// not exist in the working tree any more.
///
/// `dir` is the model directory: the repository's root or any directory under it. `rev` is any revision git
/// understands (a SHA or a prefix of one, a branch, `origin/main`, `HEAD~1`, a tag). The files are the ones
/// [`read_dir`] would find in a checkout of `rev`: `*.ds.hcl` files under `dir`, hidden directories skipped,
/// sorted by path, named relative to `dir` with `/`. Each one's [`SourceFile::path`] is `rev:path` with the
/// path from the repository's root (git's own way to name a file at a revision). Submodules are skipped; a
/// symbolic link is followed when it points at a file of the same commit, as a checkout would.
pub fn read_git(dir: &Path, rev: &str) -> Result<Sources, ReadError> {
    let (repo, model_dir) = open_repository(dir)?;
    let root = resolve(&repo, rev)?.tree().map_err(git_error)?;
    let no_model = || ReadError::NoModelAtRevision {
        rev: rev.to_string(),
        dir: dir.to_path_buf(),
    };
    let tree = if model_dir.is_empty() {
        root.clone()
    } else {
        match lookup(&repo, &root, &model_dir).map_err(git_error)? {
            Some(entry) if entry.kind() == Some(ObjectType::Tree) => {
                repo.find_tree(entry.id()).map_err(git_error)?
            }
            _ => return Err(no_model()),
        }
    };
    let mut found = Vec::new();
    collect_git_models(&repo, &tree, &mut Vec::new(), &mut found).map_err(git_error)?;
    if found.is_empty() {
        return Err(no_model());
    }
    // Name by name, as `Path` compares: the order `read_dir` gives (`a/b.ds.hcl` before `a.ds.hcl`).
    found.sort_by(|a, b| a.names.cmp(&b.names));
    let mut files = Vec::with_capacity(found.len());
    for file in found {
        let in_repo: Vec<Vec<u8>> = model_dir.iter().chain(&file.names).cloned().collect();
        let path = PathBuf::from(format!("{rev}:{}", join(&in_repo)));
        let bytes =
            read_blob(&repo, &root, in_repo, file.id, file.mode).map_err(|why| ReadError::Git {
                message: format!("`{}` {why}", path.display()),
            })?;
        let text = utf8_text(bytes, &path)?;
        files.push(SourceFile::new(join(&file.names), path, text));
    }
    Ok(Sources { files })
}

/// A model file found in a tree.
struct GitModelFile {
    /// Its path from the model directory, name by name.
    names: Vec<Vec<u8>>,
    id: Oid,
    mode: i32,
}

/// The file mode git gives symbolic links.
const LINK_MODE: i32 = 0o120000;

/// How many symbolic links one file may go through (Linux's limit).
const MAX_LINKS: usize = 40;

/// Opens the repository holding `dir`, and gives `dir`'s path in its working tree, name by name.
fn open_repository(dir: &Path) -> Result<(Repository, Vec<Vec<u8>>), ReadError> {
    let absolute = std::path::absolute(dir).map_err(|source| ReadError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    // Both `dir` and the working tree are canonicalized, so that symbolic links (macOS's /tmp → /private/tmp, a
    // link to the clone) cannot hide one from the other. `dir` may be missing from the working tree (moved since
    // the revision): then its nearest existing ancestor is canonicalized, and the rest appended.
    let mut existing = absolute.as_path();
    let mut model_dir = loop {
        match existing.canonicalize() {
            Ok(path) => break path,
            Err(_) => match existing.parent() {
                Some(parent) => existing = parent,
                None => return Err(ReadError::NotARepository(dir.to_path_buf())),
            },
        }
    };
    let repo = Repository::discover(&model_dir).map_err(|err| match err.code() {
        git2::ErrorCode::NotFound => ReadError::NotARepository(dir.to_path_buf()),
        _ => git_error(err),
    })?;
    for component in absolute
        .strip_prefix(existing)
        .unwrap_or(Path::new(""))
        .components()
    {
        match component {
            Component::ParentDir => {
                model_dir.pop();
            }
            Component::Normal(name) => model_dir.push(name),
            _ => {}
        }
    }
    let Some(workdir) = repo.workdir() else {
        // A bare repository has no working tree to place `dir` in: the model is the whole tree.
        return Ok((repo, Vec::new()));
    };
    let workdir = workdir.canonicalize().map_err(|source| ReadError::Io {
        path: workdir.to_path_buf(),
        source,
    })?;
    let Ok(relative) = model_dir.strip_prefix(&workdir) else {
        return Err(ReadError::Git {
            message: format!(
                "`{}` is not in the working tree of the repository at `{}`",
                dir.display(),
                workdir.display()
            ),
        });
    };
    let names = relative
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.as_encoded_bytes().to_vec()),
            _ => None,
        })
        .collect();
    Ok((repo, names))
}

/// The commit `rev` names.
fn resolve<'r>(repo: &'r Repository, rev: &str) -> Result<git2::Commit<'r>, ReadError> {
    let object = repo.revparse_single(rev).map_err(|err| match err.code() {
        git2::ErrorCode::NotFound => ReadError::RevisionNotFound {
            rev: rev.to_string(),
            repo: repo.workdir().unwrap_or(repo.path()).components().collect(),
        },
        _ => ReadError::Git {
            message: format!("cannot resolve revision `{rev}`: {}", err.message()),
        },
    })?;
    object.peel_to_commit().map_err(|err| ReadError::Git {
        message: format!("revision `{rev}` does not name a commit: {}", err.message()),
    })
}

fn git_error(err: git2::Error) -> ReadError {
    // libgit2, like git, refuses a repository owned by another user (a CI container's checkout, often).
    let hint = if err.code() == git2::ErrorCode::Owner {
        ": if you trust it, mark it safe with `git config --global --add safe.directory <path>`"
    } else {
        ""
    };
    ReadError::Git {
        message: format!("{}{hint}", err.message()),
    }
}

/// Finds the model files under `tree` with the rules of `collect_model_paths`.
fn collect_git_models(
    repo: &Repository,
    tree: &Tree<'_>,
    names: &mut Vec<Vec<u8>>,
    out: &mut Vec<GitModelFile>,
) -> Result<(), git2::Error> {
    for entry in tree.iter() {
        let name = entry.name_bytes();
        match entry.kind() {
            // Hidden directories are skipped (by the last arm); hidden files are not.
            Some(ObjectType::Tree) if !name.starts_with(b".") => {
                names.push(name.to_vec());
                collect_git_models(repo, &repo.find_tree(entry.id())?, names, out)?;
                names.pop();
            }
            Some(ObjectType::Blob) if name.ends_with(MODEL_SUFFIX.as_bytes()) => {
                let mut file_names = names.clone();
                file_names.push(name.to_vec());
                out.push(GitModelFile {
                    names: file_names,
                    id: entry.id(),
                    mode: entry.filemode(),
                });
            }
            // Submodules (commit entries) are other repositories.
            _ => {}
        }
    }
    Ok(())
}

/// The content of the blob at `path` (from the repository's root); a symbolic link is followed within the
/// commit. The error completes a sentence whose subject is the file.
fn read_blob(
    repo: &Repository,
    root: &Tree<'_>,
    mut path: Vec<Vec<u8>>,
    mut id: Oid,
    mut mode: i32,
) -> Result<Vec<u8>, String> {
    let unreadable = |err: git2::Error| format!("could not be read: {}", err.message());
    for _ in 0..=MAX_LINKS {
        let blob = repo.find_blob(id).map_err(unreadable)?;
        if mode != LINK_MODE {
            return Ok(blob.content().to_vec());
        }
        let target = blob.content();
        let outside = || {
            format!(
                "is a symbolic link to `{}`, outside the repository",
                String::from_utf8_lossy(target)
            )
        };
        if target.starts_with(b"/") {
            return Err(outside());
        }
        path.pop();
        for name in target.split(|&b| b == b'/') {
            match name {
                b"" | b"." => {}
                b".." => {
                    if path.pop().is_none() {
                        return Err(outside());
                    }
                }
                _ => path.push(name.to_vec()),
            }
        }
        match lookup(repo, root, &path).map_err(unreadable)? {
            Some(entry) if entry.kind() == Some(ObjectType::Blob) => {
                id = entry.id();
                mode = entry.filemode();
            }
            _ => {
                return Err(format!(
                    "is a symbolic link to `{}`, which is not a file at this revision",
                    String::from_utf8_lossy(target)
                ));
            }
        }
    }
    Err("goes through too many symbolic links".to_string())
}

/// The entry at `path` (name by name from `root`), if there is one.
fn lookup(
    repo: &Repository,
    root: &Tree<'_>,
    path: &[Vec<u8>],
) -> Result<Option<TreeEntry<'static>>, git2::Error> {
    let Some((last, dirs)) = path.split_last() else {
        return Ok(None);
    };
    let mut tree = root.clone();
    for name in dirs {
        let Some(id) = entry_named(&tree, name)
            .filter(|entry| entry.kind() == Some(ObjectType::Tree))
            .map(|entry| entry.id())
        else {
            return Ok(None);
        };
        tree = repo.find_tree(id)?;
    }
    Ok(entry_named(&tree, last).map(|entry| entry.to_owned()))
}

fn entry_named<'t>(tree: &'t Tree<'_>, name: &[u8]) -> Option<TreeEntry<'t>> {
    // `get_name_bytes` panics on a NUL byte, which no name in a tree holds.
    if name.contains(&0) {
        None
    } else {
        tree.get_name_bytes(name)
    }
}

/// A path for people: names joined with `/`.
fn join(names: &[Vec<u8>]) -> String {
    names
        .iter()
        .map(|name| String::from_utf8_lossy(name))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use git2::{IndexAddOption, Signature, Time};

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

    const LINK: i32 = 0o120000;
    const SUBMODULE: i32 = 0o160000;

    fn new_repo() -> (tempfile::TempDir, Repository) {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::init(tmp.path()).unwrap();
        (tmp, repo)
    }

    fn signature() -> Signature<'static> {
        Signature::new("ds test", "test@example.com", &Time::new(1_700_000_000, 0)).unwrap()
    }

    /// Writes (or, with `None`, removes) files in the working tree, stages everything and commits on `HEAD`.
    fn commit(repo: &Repository, files: &[(&str, Option<&str>)]) -> Oid {
        let workdir = repo.workdir().unwrap();
        for &(path, text) in files {
            let path = workdir.join(path);
            match text {
                Some(text) => {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, text).unwrap();
                }
                None => std::fs::remove_file(&path).unwrap(),
            }
        }
        let mut index = repo.index().unwrap();
        index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        commit_tree(repo, &tree)
    }

    fn commit_tree(repo: &Repository, tree: &Tree<'_>) -> Oid {
        let parent = repo.head().ok().map(|head| head.peel_to_commit().unwrap());
        let parents: Vec<_> = parent.iter().collect();
        let signature = signature();
        repo.commit(Some("HEAD"), &signature, &signature, "test", tree, &parents)
            .unwrap()
    }

    /// Commits `HEAD`'s tree with entries added to its directory `dir` ("" for the root), without the working tree.
    fn commit_entries(repo: &Repository, dir: &str, entries: &[(&str, Oid, i32)]) -> Oid {
        let root = repo.head().unwrap().peel_to_tree().unwrap();
        let subtree = if dir.is_empty() {
            root.clone()
        } else {
            repo.find_tree(root.get_path(Path::new(dir)).unwrap().id())
                .unwrap()
        };
        let mut builder = repo.treebuilder(Some(&subtree)).unwrap();
        for &(name, id, mode) in entries {
            builder.insert(name, id, mode).unwrap();
        }
        let mut id = builder.write().unwrap();
        if !dir.is_empty() {
            let mut builder = repo.treebuilder(Some(&root)).unwrap();
            builder.insert(dir, id, 0o040000).unwrap();
            id = builder.write().unwrap();
        }
        commit_tree(repo, &repo.find_tree(id).unwrap())
    }

    fn texts(sources: &Sources) -> Vec<(&str, &str)> {
        sources
            .iter()
            .map(|(_, file)| (file.name.as_str(), file.text.as_str()))
            .collect()
    }

    #[test]
    fn read_git_reads_each_commit_not_the_working_tree() {
        let (tmp, repo) = new_repo();
        let first = commit(&repo, &[("a.ds.hcl", Some("one"))]);
        let second = commit(&repo, &[("a.ds.hcl", Some("two")), ("b.ds.hcl", Some("b"))]);
        std::fs::write(tmp.path().join("a.ds.hcl"), "three").unwrap();
        std::fs::write(tmp.path().join("c.ds.hcl"), "untracked").unwrap();

        let at_first = read_git(tmp.path(), &first.to_string()).unwrap();
        assert_eq!(texts(&at_first), [("a.ds.hcl", "one")]);
        assert_eq!(
            at_first.get(FileId(0)).path,
            PathBuf::from(format!("{first}:a.ds.hcl"))
        );
        let at_second = read_git(tmp.path(), &second.to_string()).unwrap();
        assert_eq!(texts(&at_second), [("a.ds.hcl", "two"), ("b.ds.hcl", "b")]);
        assert_eq!(
            texts(&read_git(tmp.path(), "HEAD").unwrap()),
            texts(&at_second)
        );
    }

    #[test]
    fn read_git_finds_the_files_read_dir_finds() {
        let (tmp, repo) = new_repo();
        commit(
            &repo,
            &[
                ("root.ds.hcl", Some("root")),
                ("other/o.ds.hcl", Some("other")),
                ("model/a.ds.hcl", Some("a")),
                ("model/a/b.ds.hcl", Some("a/b")),
                ("model/.hidden/x.ds.hcl", Some("hidden")),
                ("model/.dot.ds.hcl", Some("dot")),
                ("model/README.md", Some("readme")),
                ("model/notes.hcl", Some("notes")),
                ("model/sub/deep/c.ds.hcl", Some("c")),
            ],
        );
        let dir = tmp.path().join("model");

        let from_git = read_git(&dir, "HEAD").unwrap();
        assert_eq!(
            texts(&from_git),
            [
                (".dot.ds.hcl", "dot"),
                ("a/b.ds.hcl", "a/b"),
                ("a.ds.hcl", "a"),
                ("sub/deep/c.ds.hcl", "c"),
            ]
        );
        assert_eq!(texts(&from_git), texts(&read_dir(&dir).unwrap()));
        assert_eq!(
            from_git.get(FileId(3)).path,
            PathBuf::from("HEAD:model/sub/deep/c.ds.hcl")
        );
        // From the root, the same rules: `other/` and the root file too, `.hidden/` still not.
        let whole = read_git(tmp.path(), "HEAD").unwrap();
        assert_eq!(texts(&whole), texts(&read_dir(tmp.path()).unwrap()));
        assert_eq!(whole.len(), 6);
    }

    #[test]
    fn read_git_skips_submodules() {
        let (tmp, repo) = new_repo();
        let first = commit(&repo, &[("a.ds.hcl", Some("a"))]);
        commit_entries(
            &repo,
            "",
            &[
                ("vendor", first, SUBMODULE),
                ("vendored.ds.hcl", first, SUBMODULE),
            ],
        );
        assert_eq!(
            texts(&read_git(tmp.path(), "HEAD").unwrap()),
            [("a.ds.hcl", "a")]
        );
    }

    #[test]
    fn read_git_follows_symbolic_links_within_the_commit() {
        let (tmp, repo) = new_repo();
        commit(
            &repo,
            &[
                ("shared/common.txt", Some("common")),
                ("sub/keep.txt", Some("")),
            ],
        );
        let link = |target: &str| repo.blob(target.as_bytes()).unwrap();
        commit_entries(
            &repo,
            "",
            &[("linked.ds.hcl", link("shared/common.txt"), LINK)],
        );
        commit_entries(
            &repo,
            "sub",
            &[
                ("up.ds.hcl", link("../shared/./common.txt"), LINK),
                ("chain.ds.hcl", link("../linked.ds.hcl"), LINK),
            ],
        );
        assert_eq!(
            texts(&read_git(tmp.path(), "HEAD").unwrap()),
            [
                ("linked.ds.hcl", "common"),
                ("sub/chain.ds.hcl", "common"),
                ("sub/up.ds.hcl", "common"),
            ]
        );

        let good = repo.head().unwrap().target().unwrap().to_string();
        for (target, why) in [
            (
                "../outside.ds.hcl",
                "is a symbolic link to `../outside.ds.hcl`, outside the repository",
            ),
            (
                "/etc/hosts",
                "is a symbolic link to `/etc/hosts`, outside the repository",
            ),
            (
                "shared",
                "is a symbolic link to `shared`, which is not a file at this revision",
            ),
            (
                "missing.txt",
                "is a symbolic link to `missing.txt`, which is not a file at this revision",
            ),
            ("bad.ds.hcl", "goes through too many symbolic links"),
        ] {
            repo.reset(
                &repo.revparse_single(&good).unwrap(),
                git2::ResetType::Soft,
                None,
            )
            .unwrap();
            commit_entries(&repo, "", &[("bad.ds.hcl", link(target), LINK)]);
            let err = read_git(tmp.path(), "HEAD").unwrap_err();
            let ReadError::Git { message } = err else {
                panic!("{target}: {err:?}")
            };
            assert_eq!(message, format!("`HEAD:bad.ds.hcl` {why}"));
        }
    }

    #[test]
    fn read_git_reads_a_model_directory_gone_from_the_working_tree() {
        let (tmp, repo) = new_repo();
        commit(&repo, &[("model/a.ds.hcl", Some("a"))]);
        std::fs::remove_dir_all(tmp.path().join("model")).unwrap();
        let sources = read_git(&tmp.path().join("model"), "HEAD").unwrap();
        assert_eq!(texts(&sources), [("a.ds.hcl", "a")]);
        // `..` in the missing part counts too.
        let sources = read_git(&tmp.path().join("gone/../model"), "HEAD").unwrap();
        assert_eq!(texts(&sources), [("a.ds.hcl", "a")]);
    }

    #[cfg(unix)]
    #[test]
    fn read_git_through_a_symbolic_link_to_the_clone() {
        let (tmp, repo) = new_repo();
        commit(
            &repo,
            &[("model/a.ds.hcl", Some("a")), ("b.ds.hcl", Some("b"))],
        );
        let elsewhere = tempfile::tempdir().unwrap();
        let clone = elsewhere.path().join("clone");
        std::os::unix::fs::symlink(tmp.path(), &clone).unwrap();
        let sources = read_git(&clone.join("model"), "HEAD").unwrap();
        assert_eq!(texts(&sources), [("a.ds.hcl", "a")]);
        assert_eq!(
            sources.get(FileId(0)).path,
            PathBuf::from("HEAD:model/a.ds.hcl")
        );
    }

    #[test]
    fn read_git_reports_a_missing_revision() {
        let (tmp, repo) = new_repo();
        commit(&repo, &[("a.ds.hcl", Some("a"))]);
        let workdir = tmp.path().canonicalize().unwrap();
        for rev in [
            "no-such-branch",
            "origin/main",
            "0123456789abcdef0123456789abcdef01234567",
            "HEAD~1",
        ] {
            let err = read_git(tmp.path(), rev).unwrap_err();
            let ReadError::RevisionNotFound { rev: got, repo } = &err else {
                panic!("{rev}: {err:?}")
            };
            assert_eq!((got.as_str(), repo), (rev, &workdir));
        }
        assert_eq!(
            read_git(tmp.path(), "no-such-branch")
                .unwrap_err()
                .to_string(),
            format!(
                "revision `no-such-branch` is not in the repository at `{}`: fetch it first (e.g. `git fetch \
                 origin no-such-branch`, or `git fetch --unshallow` in a shallow clone)",
                workdir.display()
            )
        );
    }

    #[test]
    fn read_git_in_a_bare_repository_reads_the_whole_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(tmp.path()).unwrap();
        // No commit yet: `HEAD` names nothing.
        let err = read_git(tmp.path(), "HEAD").unwrap_err();
        assert!(
            matches!(&err, ReadError::RevisionNotFound { .. }),
            "{err:?}"
        );
        let mut builder = repo.treebuilder(None).unwrap();
        let blob = repo.blob(b"a").unwrap();
        builder.insert("a.ds.hcl", blob, 0o100644).unwrap();
        let tree = repo.find_tree(builder.write().unwrap()).unwrap();
        commit_tree(&repo, &tree);
        let sources = read_git(tmp.path(), "HEAD").unwrap();
        assert_eq!(texts(&sources), [("a.ds.hcl", "a")]);
        assert_eq!(sources.get(FileId(0)).path, PathBuf::from("HEAD:a.ds.hcl"));
    }

    #[test]
    fn read_git_outside_a_repository_is_not_a_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let err = read_git(tmp.path(), "HEAD").unwrap_err();
        assert!(
            matches!(&err, ReadError::NotARepository(dir) if dir == tmp.path()),
            "{err:?}"
        );
        let missing = tmp.path().join("missing/model");
        let err = read_git(&missing, "HEAD").unwrap_err();
        assert!(
            matches!(&err, ReadError::NotARepository(dir) if *dir == missing),
            "{err:?}"
        );
    }

    #[test]
    fn read_git_without_the_model_at_a_revision() {
        let (tmp, repo) = new_repo();
        let readme = commit(&repo, &[("README.md", Some("hi"))]);
        let notes = commit(&repo, &[("model/notes.txt", Some("notes"))]);
        commit(&repo, &[("model/notes.txt", None)]);
        std::fs::remove_dir(tmp.path().join("model")).unwrap();
        let as_file = commit(&repo, &[("model", Some("a file"))]);
        commit(&repo, &[("model", None), ("model/a.ds.hcl", Some("a"))]);
        let model = tmp.path().join("model");
        for (dir, rev) in [
            (&model, readme),
            (&model, notes),
            (&model, as_file),
            (&tmp.path().to_path_buf(), readme),
        ] {
            let err = read_git(dir, &rev.to_string()).unwrap_err();
            assert!(
                matches!(&err, ReadError::NoModelAtRevision { rev: r, dir: d } if *r == rev.to_string() && d == dir),
                "{err:?}"
            );
        }
        assert_eq!(
            read_git(&model, &readme.to_string())
                .unwrap_err()
                .to_string(),
            format!(
                "no model files (`*.ds.hcl`) under `{}` at revision `{readme}`: check the revision, and that -C \
                 names the model directory",
                model.display()
            )
        );
        assert_eq!(
            texts(&read_git(&model, "HEAD").unwrap()),
            [("a.ds.hcl", "a")]
        );
    }

    #[test]
    fn read_git_accepts_any_revision_syntax() {
        let (tmp, repo) = new_repo();
        let first = commit(&repo, &[("a.ds.hcl", Some("one"))]);
        let second = commit(&repo, &[("a.ds.hcl", Some("two"))]);
        let first_commit = repo.find_commit(first).unwrap();
        repo.branch("feature", &first_commit, false).unwrap();
        repo.tag_lightweight("v1", first_commit.as_object(), false)
            .unwrap();
        repo.tag(
            "v2",
            &repo.find_object(second, None).unwrap(),
            &signature(),
            "v2",
            false,
        )
        .unwrap();
        let short = first.to_string()[..7].to_string();
        for (rev, text) in [
            ("feature", "one"),
            (short.as_str(), "one"),
            ("HEAD~1", "one"),
            ("HEAD^", "one"),
            ("v1", "one"),
            ("v2", "two"),
            ("HEAD", "two"),
            ("@", "two"),
        ] {
            let sources = read_git(tmp.path(), rev).unwrap();
            assert_eq!(texts(&sources), [("a.ds.hcl", text)], "{rev}");
            assert_eq!(
                sources.get(FileId(0)).path,
                PathBuf::from(format!("{rev}:a.ds.hcl"))
            );
        }
        let err = read_git(tmp.path(), "HEAD:a.ds.hcl").unwrap_err();
        assert!(
            matches!(&err, ReadError::Git { message } if message.starts_with("revision `HEAD:a.ds.hcl` does not name a commit: ")),
            "{err:?}"
        );
    }

    #[test]
    fn read_git_reports_files_that_are_not_utf8() {
        let (tmp, repo) = new_repo();
        commit(&repo, &[("a.ds.hcl", Some("a"))]);
        std::fs::write(tmp.path().join("bad.ds.hcl"), b"ok\n\xff\n").unwrap();
        commit(&repo, &[]);
        let err = read_git(tmp.path(), "HEAD").unwrap_err();
        assert!(
            matches!(&err, ReadError::NotUtf8 { path, line: 2 } if *path == Path::new("HEAD:bad.ds.hcl")),
            "{err:?}"
        );
    }

    /// Runs git in `dir` with no configuration but what a commit needs.
    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=ds test",
                "-c",
                "user.email=test@example.com",
            ])
            .args(["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    /// What CI has: a clone of depth 1 of the base branch, and the head of a pull request fetched at depth 1.
    #[test]
    fn read_git_in_a_shallow_ci_clone() {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        git(tmp.path(), &["init", "--quiet", "-b", "main", "origin"]);
        let commit = |text: &str| {
            std::fs::create_dir_all(origin.join("model")).unwrap();
            std::fs::write(origin.join("model/a.ds.hcl"), text).unwrap();
            git(&origin, &["add", "-A"]);
            git(&origin, &["commit", "--quiet", "-m", text]);
            git(&origin, &["rev-parse", "HEAD"])
        };
        let first = commit("1");
        commit("2");
        let base = commit("3");
        git(&origin, &["checkout", "--quiet", "-b", "pr"]);
        let head = commit("4");
        git(&origin, &["checkout", "--quiet", "main"]);

        let url = format!("file://{}", origin.display());
        git(
            tmp.path(),
            &[
                "clone", "--quiet", "--depth", "1", "--branch", "main", &url, "ci",
            ],
        );
        let ci = tmp.path().join("ci");
        git(&ci, &["fetch", "--quiet", "--depth", "1", "origin", &head]);

        let model = ci.join("model");
        assert_eq!(
            texts(&read_git(&model, &base).unwrap()),
            [("a.ds.hcl", "3")]
        );
        assert_eq!(
            texts(&read_git(&model, &head).unwrap()),
            [("a.ds.hcl", "4")]
        );
        assert_eq!(
            texts(&read_git(&model, "origin/main").unwrap()),
            [("a.ds.hcl", "3")]
        );
        assert_eq!(
            texts(&read_git(&model, &head[..10]).unwrap()),
            [("a.ds.hcl", "4")]
        );
        for rev in ["HEAD~2", "HEAD~1", first.as_str(), "origin/pr"] {
            let err = read_git(&model, rev).unwrap_err();
            assert!(
                matches!(&err, ReadError::RevisionNotFound { .. }),
                "{rev}: {err:?}"
            );
        }
    }
}
