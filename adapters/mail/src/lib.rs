//! The mail port's adapters: [`LogMailer`] (the local default), [`FileMailer`] (`.eml` files in a
//! folder) and [`SmtpMailer`] (lettre over SMTP, retried with backoff), chosen by
//! [`build_mailer`] from [`MailSettings`].

mod file;
mod log;
mod message;
mod settings;
mod smtp;

use std::sync::Arc;

use domain::ports::Mailer;

pub use file::FileMailer;
pub use log::LogMailer;
pub use settings::{MailConfigError, MailSettings, MailTransport};
pub use smtp::SmtpMailer;

/// The mailer `settings` ask for, after [`MailSettings::validate`]: for `file`, the folder is
/// created if missing.
///
/// # Errors
/// [`MailConfigError`] naming the first invalid key, or the folder that cannot be created.
pub fn build_mailer(settings: &MailSettings) -> Result<Arc<dyn Mailer>, MailConfigError> {
    settings.validate()?;
    let from = settings.sender()?;
    Ok(match settings.transport {
        MailTransport::Log => Arc::new(LogMailer::new(from)),
        MailTransport::File => Arc::new(FileMailer::new(&settings.file_dir, from)?),
        MailTransport::Smtp => Arc::new(SmtpMailer::build(settings, from)?),
    })
}
