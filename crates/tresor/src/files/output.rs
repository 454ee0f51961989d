//! Where decrypted or encrypted data goes: stdout, or a path.

use super::*;

/// Where the result goes: stdout, or a path. Plaintext goes to a path only
/// through [`crate::fs::PrivateFile`] (a new 0600 file renamed into place
/// on [`Output::commit`], never an existing FIFO, device or folder);
/// ciphertext may also go into an existing device or pipe (`-o /dev/null`).
/// Dropped without `commit`, nothing is left at the path and an existing
/// file there is left as it was.
pub struct Output {
    kind: OutputKind,
}

pub(super) enum OutputKind {
    Stdout(io::Stdout),
    Direct(File, PathBuf),
    Private(crate::fs::PrivateFile),
}

impl Output {
    /// Standard output.
    pub fn stdout() -> Self {
        Self {
            kind: OutputKind::Stdout(io::stdout()),
        }
    }

    /// A path for plaintext (`decrypt -o`): a new private file renamed over
    /// the path by [`Output::commit`]. An existing FIFO, device, socket or
    /// folder at the path is refused (exit code 2), and so is a symbolic link
    /// (neither followed nor replaced).
    pub fn path(path: &Path) -> Result<Self> {
        Ok(Self {
            kind: OutputKind::Private(crate::fs::PrivateFile::create(
                path,
                crate::fs::Existing::Replace,
            )?),
        })
    }

    /// A path for ciphertext (`encrypt -o`): as [`Output::path`], except
    /// that an existing device or pipe (`/dev/null`) is written directly:
    /// what is written there is encrypted.
    pub fn ciphertext_path(path: &Path) -> Result<Self> {
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
            && !meta.is_dir()
        {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|source| io_error("output", path, source))?;
            return Ok(Self {
                kind: OutputKind::Direct(file, path.to_path_buf()),
            });
        }
        Self::path(path)
    }

    /// Whether the output is a regular file (so a summary can be printed on stdout).
    pub fn is_file(&self) -> bool {
        matches!(self.kind, OutputKind::Private(..))
    }

    /// Finishes: flushes, and for a private file syncs it, renames it into
    /// place and syncs its folder.
    pub fn commit(mut self) -> Result<()> {
        match self.kind {
            OutputKind::Stdout(ref mut out) => out
                .flush()
                .map_err(|source| crate::fs::write_error("stdout", source)),
            OutputKind::Direct(ref mut f, ref path) => f
                .flush()
                .map_err(|source| crate::fs::write_error(&path.display().to_string(), source)),
            OutputKind::Private(file) => file.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.kind {
            OutputKind::Stdout(out) => out.write(buf),
            OutputKind::Direct(f, _) => f.write(buf),
            OutputKind::Private(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.kind {
            OutputKind::Stdout(out) => out.flush(),
            OutputKind::Direct(f, _) => f.flush(),
            OutputKind::Private(f) => f.flush(),
        }
    }
}
