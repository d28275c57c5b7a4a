//! Where a picture goes (`report -o`, `--plot`): checked when the run starts, written safely
//! when it ends.
//!
//! - The format follows the name: `.svg` (or no extension: `-`, `/dev/stdout`) is SVG, `.png`
//!   is the SVG rendered by resvg; any other extension is refused.
//! - A regular file (or a new name) is written through a temporary file of a unique name in
//!   the same directory, created with `O_EXCL` (a planted link is never followed), then renamed
//!   over the destination: a reader never sees half a picture, and on any failure the
//!   temporary file is removed. A symbolic link at the destination is replaced, not followed.
//! - Special files are written directly, never renamed over: `-` (standard output), a FIFO, a
//!   device (`/dev/null`), a socket, and links into `/dev` or `/proc` (`/dev/stdout`,
//!   `/proc/self/fd/1`).
//! - The check at start (`Destination::check`) makes and removes a temporary file beside the
//!   destination (or opens a special file), so that a long run cannot lose its picture at the
//!   end to a wrong name or a directory it cannot write.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// What a picture is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

/// How the destination is written.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Way {
    /// `-`: standard output.
    Stdout,
    /// Opened and written in place: a FIFO, a device, a link into /dev or /proc.
    Direct,
    /// Through a temporary file in `dir`, renamed over the destination.
    Replace { dir: PathBuf },
}

/// A checked destination.
#[derive(Clone, Debug)]
pub struct Destination {
    pub path: PathBuf,
    pub format: Format,
    way: Way,
}

/// The format a name asks for. Err: an extension we do not write.
pub fn format_of(path: &Path) -> Result<Format, Error> {
    match path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
    {
        None => Ok(Format::Svg),
        Some(e) if e == "svg" => Ok(Format::Svg),
        Some(e) if e == "png" => Ok(Format::Png),
        Some(e) => Err(Error::Usage(format!(
            "{}: cannot write .{} pictures: name the picture .svg or .png",
            path.display(),
            crate::report::draw::clean(&e)
        ))),
    }
}

/// Whether an existing path is written in place rather than replaced.
fn is_special(path: &Path) -> io::Result<Option<bool>> {
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let target = match std::fs::metadata(path) {
        Ok(m) => m,
        // A dangling link: replaced like a regular file.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(false)),
        Err(e) => return Err(e),
    };
    if target.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "a directory"));
    }
    let t = target.file_type();
    let special = t.is_fifo() || t.is_char_device() || t.is_block_device() || t.is_socket();
    // /dev/stdout, /proc/self/fd/1: the link is the caller's stdout, whatever it points to.
    let system_link =
        link.file_type().is_symlink() && (path.starts_with("/dev") || path.starts_with("/proc"));
    Ok(Some(special || system_link))
}

/// A unique temporary file beside the destination: `O_CREAT|O_EXCL` (never a planted link),
/// mode 0666 less the umask (as a plain `open` would make the picture).
fn temp_in(dir: &Path, path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
}

impl Destination {
    /// Check at start that a picture can be written to `path`: its format, and that the file
    /// (or a temporary file beside it) can be made. Err: one line, exit status 2.
    pub fn check(path: &Path) -> Result<Destination, Error> {
        let format = format_of(path)?;
        let what = |e| Error::io(format!("write the picture to {}", path.display()), e);
        if path.as_os_str() == "-" {
            return Ok(Destination {
                path: path.to_path_buf(),
                format,
                way: Way::Stdout,
            });
        }
        let way = match is_special(path).map_err(what)? {
            Some(true) => {
                // Opened at the end (a FIFO's reader may come later); writable now?
                let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                    .map_err(|_| what(io::ErrorKind::InvalidInput.into()))?;
                // SAFETY: a valid C string; access() only reads it.
                if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
                    return Err(what(io::Error::last_os_error()));
                }
                Way::Direct
            }
            _ => {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                if path.file_name().is_none() {
                    return Err(what(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "not a file name",
                    )));
                }
                // Made and removed: the directory takes our files.
                temp_in(&dir, path).map_err(what)?;
                Way::Replace { dir }
            }
        };
        Ok(Destination {
            path: path.to_path_buf(),
            format,
            way,
        })
    }

    /// Write the picture (`svg`, rendered to PNG when the name asks for it). Returns the
    /// bytes written.
    pub fn write_svg(&self, svg: &str) -> Result<usize, Error> {
        let png;
        let bytes = match self.format {
            Format::Svg => svg.as_bytes(),
            Format::Png => {
                png = super::png::render(svg)?;
                &png[..]
            }
        };
        self.write(bytes)?;
        Ok(bytes.len())
    }

    /// Write `bytes` as the whole file.
    pub fn write(&self, bytes: &[u8]) -> Result<(), Error> {
        let what = |e| Error::io(format!("write {}", self.path.display()), e);
        match &self.way {
            Way::Stdout => {
                let mut out = io::stdout().lock();
                match out.write_all(bytes).and_then(|()| out.flush()) {
                    // `| head`: the reader has what it wanted.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    r => r.map_err(what),
                }
            }
            Way::Direct => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&self.path)
                    .map_err(what)?;
                f.write_all(bytes).and_then(|()| f.flush()).map_err(what)
            }
            Way::Replace { dir } => write_replacing(dir, &self.path, bytes).map_err(what),
        }
    }
}

/// Through a temporary file in `dir`, renamed over `path`; the temporary file is removed on
/// any failure (dropping a `NamedTempFile` removes it).
fn write_replacing(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = temp_in(dir, path)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_format_follows_the_name_and_others_are_refused() {
        assert_eq!(format_of(Path::new("a.svg")).unwrap(), Format::Svg);
        assert_eq!(format_of(Path::new("a.SVG")).unwrap(), Format::Svg);
        assert_eq!(format_of(Path::new("a.png")).unwrap(), Format::Png);
        assert_eq!(format_of(Path::new("-")).unwrap(), Format::Svg);
        assert_eq!(format_of(Path::new("/dev/null")).unwrap(), Format::Svg);
        let e = format_of(Path::new("a.jpg")).unwrap_err().to_string();
        assert!(
            e.contains("cannot write .jpg") && e.contains(".svg or .png"),
            "{e}"
        );
    }

    #[test]
    fn a_planted_link_is_not_followed_and_a_link_at_the_name_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        // The old fixed temporary name, planted.
        std::os::unix::fs::symlink(&victim, d.path().join("pic.svg.tmp")).unwrap();
        let pic = d.path().join("pic.svg");
        let dest = Destination::check(&pic).unwrap();
        dest.write(b"<svg/>").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&pic).unwrap(), "<svg/>");
        // A link at the name itself is replaced by the picture, its target untouched.
        let link = d.path().join("link.svg");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        Destination::check(&link).unwrap().write(b"<svg/>").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(
            files(d.path()),
            ["link.svg", "pic.svg", "pic.svg.tmp", "victim"]
        );
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let pic = d.path().join("pic.svg");
        let dest = Destination::check(&pic).unwrap();
        // The destination became a non-empty directory: the rename fails after the write.
        std::fs::create_dir(&pic).unwrap();
        std::fs::write(pic.join("x"), "").unwrap();
        let e = dest.write(b"<svg/>").unwrap_err().to_string();
        assert!(e.starts_with(&format!("write {}", pic.display())), "{e}");
        assert_eq!(files(d.path()), ["pic.svg"]);
    }

    #[test]
    fn bad_destinations_fail_the_check() {
        let d = tempfile::tempdir().unwrap();
        let e = Destination::check(&d.path().join("no/such/dir/pic.svg"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("write the picture to "), "{e}");
        let e = Destination::check(d.path()).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        assert!(files(d.path()).is_empty());
        // Special files are written in place.
        let dest = Destination::check(Path::new("/dev/null")).unwrap();
        assert_eq!(dest.way, Way::Direct);
        dest.write(b"x").unwrap();
        assert_eq!(Destination::check(Path::new("-")).unwrap().way, Way::Stdout);
    }
}
