//! `FileMailer`: writes each email as one `.eml` file (RFC 5322 text) into a folder, for local use and tests.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use domain::ports::{Email, MailError, Mailer};
use lettre::message::Mailbox;
use uuid::Uuid;

use crate::message::render;
use crate::settings::MailConfigError;

/// Writes every email to `<folder>/<uuid v7>.eml` (names sort by time and never collide).
/// Each file appears whole: it is written under a hidden temporary name, flushed to disk, then
/// renamed, so a reader never sees half a message.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl FileMailer {
    /// A mailer writing into `dir` (created if missing), as sent by `from`.
    ///
    /// # Errors
    /// [`MailConfigError`] (`file_dir`) when the folder cannot be created.
    pub fn new(dir: impl AsRef<Path>, from: Mailbox) -> Result<Self, MailConfigError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|error| {
            MailConfigError::new(
                "file_dir",
                format!("{} cannot be created: {error}", dir.display()),
            )
        })?;
        Ok(Self { dir, from })
    }

    /// The folder the files are written to.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes `bytes` to `dir/<id>.eml` through a temporary file in the same folder.
fn write_atomically(dir: &Path, id: Uuid, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let temporary = dir.join(format!(".{id}.eml.tmp"));
    let target = dir.join(format!("{id}.eml"));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, &target));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(target)
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let bytes = render(&self.from, email)?.formatted();
        let dir = self.dir.clone();
        let id = Uuid::now_v7();
        let path = tokio::task::spawn_blocking(move || write_atomically(&dir, id, &bytes))
            .await
            .map_err(|error| MailError::Transient(format!("the file writer failed: {error}")))?
            .map_err(|error| {
                MailError::Transient(format!(
                    "cannot write an email into {}: {error}",
                    self.dir.display()
                ))
            })?;
        tracing::info!(
            to = %email.to(),
            subject = email.subject(),
            path = %path.display(),
            "email written to a file"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use domain::Email as Address;

    use super::*;

    fn temporary_folder() -> PathBuf {
        std::env::temp_dir().join(format!("file-mailer-{}", Uuid::new_v4()))
    }

    #[tokio::test]
    async fn each_email_is_one_complete_eml_file_and_nothing_else_is_left() {
        let dir = temporary_folder();
        let mailer = FileMailer::new(&dir, "noreply@example.com".parse().expect("a mailbox"))
            .expect("a mailer");
        for n in 0..3 {
            let email = Email::new(
                Address::parse("ada@example.com").expect("an address"),
                None,
                format!("Message {n}"),
                "Body",
            )
            .expect("an email");
            mailer.send(&email).await.expect("written");
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("the folder")
            .map(|entry| {
                entry
                    .expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.iter().all(|name| name.ends_with(".eml")), "{names:?}");
        for (n, name) in names.iter().enumerate() {
            let text = std::fs::read_to_string(dir.join(name)).expect("the file");
            assert!(
                text.contains(&format!("Subject: Message {n}\r\n")),
                "{text}"
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn a_folder_that_cannot_be_created_is_a_configuration_error() {
        let file = temporary_folder();
        std::fs::write(&file, b"a file, not a folder").expect("a file");
        let error = FileMailer::new(
            file.join("mail"),
            "noreply@example.com".parse().expect("a mailbox"),
        )
        .expect_err("not a folder");
        assert_eq!(error.key, "file_dir");
        std::fs::remove_file(&file).ok();
    }
}
