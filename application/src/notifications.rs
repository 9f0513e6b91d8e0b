//! Email notifications as background jobs: the welcome email after registration and the notice sent to each position holder when a market is settled.
//!
//! Use cases enqueue the jobs in their own transaction ([`welcome_email_job`],
//! [`resolution_notice_job`]); workers run them with [`WelcomeEmailHandler`] and
//! [`ResolutionNoticeHandler`], which load what they need and send through the
//! [`Mailer`] port. Delivery is at least once: a job retried after a send that actually went
//! through sends the email again.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ports::{Email, MailError, Mailer, MarketRepository, RepositoryError, UserRepository};
use domain::{
    Amount, Job, JobError, JobId, JobKind, Market, MarketId, MarketStatus, NewJob, PositionId,
    Priority, Side, User, UserId,
};
use serde::{Deserialize, Serialize};

use crate::jobs::{JobFailure, JobHandler};

/// The kind of the welcome email job.
pub const WELCOME_EMAIL: &str = "welcome_email";
/// The kind of the market resolution notice job.
pub const RESOLUTION_NOTICE: &str = "resolution_notice";
/// Attempts per email job: with the workers' default backoff (1 s doubling to 5 min), about ten
/// minutes of a mail server being away before the job goes dead.
pub const EMAIL_MAX_ATTEMPTS: u32 = 10;

/// The kind named `name`, one of the constants above (all valid kinds).
fn kind(name: &'static str) -> JobKind {
    JobKind::parse(name).unwrap_or_else(|_| unreachable!("`{name}` is a valid kind"))
}

/// The payload of a [`WELCOME_EMAIL`] job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct WelcomePayload {
    user_id: UserId,
}

/// A welcome email job for `user_id`, owned by that user, unique per user while it is live
/// (`welcome_email:{user_id}`).
///
/// # Errors
/// [`JobError`] only if the job description breaks a bound (it does not).
pub fn welcome_email_job(
    id: JobId,
    user_id: UserId,
    now: DateTime<Utc>,
) -> Result<NewJob, JobError> {
    let payload = serde_json::to_string(&WelcomePayload { user_id })
        .unwrap_or_else(|_| format!(r#"{{"user_id":"{user_id}"}}"#));
    NewJob::new(id, kind(WELCOME_EMAIL), payload, now)?
        .with_max_attempts(EMAIL_MAX_ATTEMPTS)?
        .with_unique_key(format!("{WELCOME_EMAIL}:{user_id}"))
        .map(|job| job.with_owner(user_id))
}

/// What a settled position paid, to tell its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolutionNotice {
    pub user_id: UserId,
    pub market_id: MarketId,
    pub position_id: PositionId,
    pub side: Side,
    pub stake: Amount,
    pub payout: Amount,
}

/// The payload of a [`RESOLUTION_NOTICE`] job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct NoticePayload {
    user_id: UserId,
    market_id: MarketId,
    position_id: PositionId,
    side: Side,
    stake_cents: i64,
    payout_cents: i64,
}

impl NoticePayload {
    fn notice(self) -> Option<ResolutionNotice> {
        Some(ResolutionNotice {
            user_id: self.user_id,
            market_id: self.market_id,
            position_id: self.position_id,
            side: self.side,
            stake: Amount::from_cents(self.stake_cents)?,
            payout: Amount::from_cents(self.payout_cents)?,
        })
    }
}

/// A resolution notice job for `notice`, owned by the position's holder, low priority, unique
/// per position while it is live (`resolution_notice:{market_id}:{position_id}`).
///
/// # Errors
/// [`JobError`] only if the job description breaks a bound (it does not).
pub fn resolution_notice_job(
    id: JobId,
    notice: &ResolutionNotice,
    now: DateTime<Utc>,
) -> Result<NewJob, JobError> {
    let payload = NoticePayload {
        user_id: notice.user_id,
        market_id: notice.market_id,
        position_id: notice.position_id,
        side: notice.side,
        stake_cents: notice.stake.cents(),
        payout_cents: notice.payout.cents(),
    };
    let payload = serde_json::to_string(&payload).map_err(|_| JobError::PayloadTooLarge {
        max: NewJob::MAX_PAYLOAD_BYTES,
    })?;
    NewJob::new(id, kind(RESOLUTION_NOTICE), payload, now)?
        .with_priority(Priority::Low)
        .with_max_attempts(EMAIL_MAX_ATTEMPTS)?
        .with_unique_key(format!(
            "{RESOLUTION_NOTICE}:{}:{}",
            notice.market_id, notice.position_id
        ))
        .map(|job| job.with_owner(notice.user_id))
}

/// A transient mail failure is retried by the queue; a rejected email never will be.
fn mail_failure(error: MailError) -> JobFailure {
    match error {
        MailError::Transient(_) => JobFailure::Retry(error.to_string()),
        MailError::Rejected(_) => JobFailure::Permanent(error.to_string()),
    }
}

fn storage_failure(error: &RepositoryError) -> JobFailure {
    JobFailure::Retry(format!("loading failed: {error}"))
}

fn payload<T: for<'de> Deserialize<'de>>(job: &Job) -> Result<T, JobFailure> {
    serde_json::from_str(&job.payload)
        .map_err(|error| JobFailure::Permanent(format!("unreadable payload: {error}")))
}

/// The recipient of an email to `user`, or `None` when the account is disabled (it gets no mail).
async fn recipient(
    users: &dyn UserRepository,
    user_id: UserId,
) -> Result<Option<User>, JobFailure> {
    let user = users
        .find_by_id(user_id)
        .await
        .map_err(|error| storage_failure(&error))?
        .ok_or_else(|| JobFailure::Permanent(format!("no user {user_id}")))?;
    if user.disabled {
        tracing::info!(user_id = %user_id, "no email to a disabled account");
        return Ok(None);
    }
    Ok(Some(user))
}

fn email_to(user: &User, subject: &str, body: String) -> Result<Email, JobFailure> {
    Email::new(user.email.clone(), Some(user.name.clone()), subject, body)
        .map_err(|error| JobFailure::Permanent(format!("the email is invalid: {error}")))
}

/// `text` cut to at most `max` characters, ending with `…` when cut.
fn shortened(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// Runs [`WELCOME_EMAIL`] jobs: greets a new user by email.
pub struct WelcomeEmailHandler {
    users: Arc<dyn UserRepository>,
    mailer: Arc<dyn Mailer>,
}

impl WelcomeEmailHandler {
    #[must_use]
    pub fn new(users: Arc<dyn UserRepository>, mailer: Arc<dyn Mailer>) -> Self {
        Self { users, mailer }
    }
}

/// The welcome email's subject and body for `user`.
fn welcome_email(user: &User) -> Result<Email, JobFailure> {
    let body = format!(
        "Hello {name},\n\n\
         Welcome to Prediction Markets. Your account {email} is ready, with a starting balance \
         of {balance} credits.\n\n\
         You received this email because this address was used to register.\n",
        name = user.name.as_str(),
        email = user.email,
        balance = user.balance,
    );
    email_to(user, "Welcome to Prediction Markets", body)
}

#[async_trait]
impl JobHandler for WelcomeEmailHandler {
    fn kind(&self) -> JobKind {
        kind(WELCOME_EMAIL)
    }

    /// # Errors
    /// [`JobFailure::Permanent`] for an unreadable payload, a missing user or a rejected email;
    /// [`JobFailure::Retry`] when loading fails or the mail server fails transiently.
    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let WelcomePayload { user_id } = payload(job)?;
        let Some(user) = recipient(self.users.as_ref(), user_id).await? else {
            return Ok(());
        };
        self.mailer
            .send(&welcome_email(&user)?)
            .await
            .map_err(mail_failure)
    }
}

/// Runs [`RESOLUTION_NOTICE`] jobs: tells a position's holder what their position paid.
pub struct ResolutionNoticeHandler {
    users: Arc<dyn UserRepository>,
    markets: Arc<dyn MarketRepository>,
    mailer: Arc<dyn Mailer>,
}

impl ResolutionNoticeHandler {
    #[must_use]
    pub fn new(
        users: Arc<dyn UserRepository>,
        markets: Arc<dyn MarketRepository>,
        mailer: Arc<dyn Mailer>,
    ) -> Self {
        Self {
            users,
            markets,
            mailer,
        }
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Yes => "YES",
        Side::No => "NO",
    }
}

/// The notice's subject and body: "Market X resolved YES: your stake of 10.00 on NO paid 0.00".
fn resolution_email(
    user: &User,
    market: &Market,
    notice: &ResolutionNotice,
) -> Result<Email, JobFailure> {
    let how = match (market.status, market.outcome) {
        (MarketStatus::Resolved, Some(outcome)) => {
            format!("resolved {}", outcome.as_str().to_uppercase())
        }
        (MarketStatus::Cancelled, _) => "was cancelled".to_owned(),
        (status, _) => {
            return Err(JobFailure::Permanent(format!(
                "market {} is {status}, not settled",
                market.id
            )));
        }
    };
    let line = format!(
        "Market {name} {how}: your stake of {stake} on {side} paid {payout}",
        name = market.name.as_str(),
        stake = notice.stake,
        side = side_name(notice.side),
        payout = notice.payout,
    );
    let subject = shortened(
        &format!("Market {how}: {}", market.name.as_str()),
        Email::MAX_SUBJECT_CHARS,
    );
    let body = format!(
        "Hello {name},\n\n{line}.\n\nThe payout has been credited to your balance.\n",
        name = user.name.as_str(),
    );
    email_to(user, &subject, body)
}

#[async_trait]
impl JobHandler for ResolutionNoticeHandler {
    fn kind(&self) -> JobKind {
        kind(RESOLUTION_NOTICE)
    }

    /// # Errors
    /// [`JobFailure::Permanent`] for an unreadable payload, a missing user or market, a market
    /// that is not settled, or a rejected email; [`JobFailure::Retry`] when loading fails or the
    /// mail server fails transiently.
    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let notice = payload::<NoticePayload>(job)?
            .notice()
            .ok_or_else(|| JobFailure::Permanent("an amount out of range".to_owned()))?;
        let Some(user) = recipient(self.users.as_ref(), notice.user_id).await? else {
            return Ok(());
        };
        let market = self
            .markets
            .find_by_id(notice.market_id)
            .await
            .map_err(|error| storage_failure(&error))?
            .ok_or_else(|| JobFailure::Permanent(format!("no market {}", notice.market_id)))?;
        self.mailer
            .send(&resolution_email(&user, &market, &notice)?)
            .await
            .map_err(mail_failure)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use domain::ports::{MockMailer, MockMarketRepository, MockUserRepository};
    use domain::{
        Category, DisplayName, Email as Address, MarketDescription, MarketName, Outcome,
        PasswordHash, Role,
    };
    use uuid::Uuid;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("a time")
    }

    fn user(disabled: bool) -> User {
        User {
            id: UserId::from_uuid(Uuid::new_v4()),
            email: Address::parse("ada@example.com").expect("an address"),
            name: DisplayName::parse("Ada").expect("a name"),
            password_hash: PasswordHash::from_phc("$argon2id$stub".to_owned()),
            role: Role::User,
            balance: Amount::from_cents(100_000).expect("an amount"),
            disabled,
            created_at: now(),
            updated_at: now(),
        }
    }

    fn market(status: MarketStatus, outcome: Option<Outcome>) -> Market {
        Market {
            id: MarketId::from_uuid(Uuid::new_v4()),
            name: MarketName::parse("Will it rain in Paris?").expect("a name"),
            description: MarketDescription::parse("").expect("a description"),
            category: Category::parse("weather").expect("a category"),
            status,
            end_date: now(),
            creator_id: UserId::from_uuid(Uuid::new_v4()),
            yes_volume: Amount::ZERO,
            no_volume: Amount::ZERO,
            outcome,
            image_url: None,
            thumbnail_url: None,
            version: 1,
            created_at: now(),
            updated_at: now(),
        }
    }

    fn users_with(found: Option<User>) -> Arc<dyn UserRepository> {
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_id()
            .returning(move |_| Ok(found.clone()));
        Arc::new(users)
    }

    fn markets_with(found: Option<Market>) -> Arc<dyn MarketRepository> {
        let mut markets = MockMarketRepository::new();
        markets
            .expect_find_by_id()
            .returning(move |_| Ok(found.clone()));
        Arc::new(markets)
    }

    /// A mailer that answers `result` and keeps what it was asked to send.
    fn mailer(result: Result<(), MailError>, sent: Arc<Mutex<Vec<Email>>>) -> Arc<dyn Mailer> {
        let mut mailer = MockMailer::new();
        mailer.expect_send().returning(move |email| {
            sent.lock().expect("not poisoned").push(email.clone());
            result.clone()
        });
        Arc::new(mailer)
    }

    fn never_mails() -> Arc<dyn Mailer> {
        let mut mailer = MockMailer::new();
        mailer.expect_send().never();
        Arc::new(mailer)
    }

    fn welcome_job(user_id: UserId) -> Job {
        welcome_email_job(JobId::from_uuid(Uuid::new_v4()), user_id, now())
            .expect("a job")
            .into_job()
    }

    fn notice(user_id: UserId, market_id: MarketId) -> ResolutionNotice {
        ResolutionNotice {
            user_id,
            market_id,
            position_id: PositionId::from_uuid(Uuid::new_v4()),
            side: Side::No,
            stake: Amount::from_cents(1_000).expect("an amount"),
            payout: Amount::ZERO,
        }
    }

    fn notice_job(notice: &ResolutionNotice) -> Job {
        resolution_notice_job(JobId::from_uuid(Uuid::new_v4()), notice, now())
            .expect("a job")
            .into_job()
    }

    #[test]
    fn the_welcome_job_is_unique_per_user_and_owned_by_them() {
        let user_id = UserId::from_uuid(Uuid::new_v4());
        let job =
            welcome_email_job(JobId::from_uuid(Uuid::new_v4()), user_id, now()).expect("a job");
        assert_eq!(job.kind().as_str(), "welcome_email");
        assert_eq!(
            job.unique_key(),
            Some(format!("welcome_email:{user_id}").as_str())
        );
        assert_eq!(job.owner(), Some(user_id));
        assert_eq!(job.max_attempts(), EMAIL_MAX_ATTEMPTS);
        let payload: serde_json::Value = serde_json::from_str(job.payload()).expect("JSON");
        assert_eq!(payload, serde_json::json!({"user_id": user_id.to_string()}));
    }

    #[test]
    fn the_notice_job_is_unique_per_position_and_carries_cents() {
        let notice = notice(
            UserId::from_uuid(Uuid::new_v4()),
            MarketId::from_uuid(Uuid::new_v4()),
        );
        let job =
            resolution_notice_job(JobId::from_uuid(Uuid::new_v4()), &notice, now()).expect("a job");
        assert_eq!(job.kind().as_str(), "resolution_notice");
        assert_eq!(
            job.unique_key(),
            Some(
                format!(
                    "resolution_notice:{}:{}",
                    notice.market_id, notice.position_id
                )
                .as_str()
            )
        );
        assert_eq!(job.owner(), Some(notice.user_id));
        assert_eq!(job.priority(), Priority::Low);
        let payload: serde_json::Value = serde_json::from_str(job.payload()).expect("JSON");
        assert_eq!(
            payload,
            serde_json::json!({
                "user_id": notice.user_id.to_string(),
                "market_id": notice.market_id.to_string(),
                "position_id": notice.position_id.to_string(),
                "side": "no",
                "stake_cents": 1000,
                "payout_cents": 0,
            })
        );
    }

    #[tokio::test]
    async fn a_welcome_email_goes_to_the_user() {
        let user = user(false);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let handler =
            WelcomeEmailHandler::new(users_with(Some(user.clone())), mailer(Ok(()), sent.clone()));
        assert_eq!(handler.kind().as_str(), WELCOME_EMAIL);
        assert_eq!(handler.run(&welcome_job(user.id)).await, Ok(()));
        let sent = sent.lock().expect("not poisoned");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to(), &user.email);
        assert_eq!(sent[0].to_name(), Some(&user.name));
        assert_eq!(sent[0].subject(), "Welcome to Prediction Markets");
        assert!(sent[0].body().contains("Hello Ada"), "{}", sent[0].body());
    }

    #[tokio::test]
    async fn a_missing_user_is_permanent_and_a_disabled_one_gets_nothing() {
        let handler = WelcomeEmailHandler::new(users_with(None), never_mails());
        let job = welcome_job(UserId::from_uuid(Uuid::new_v4()));
        assert!(matches!(
            handler.run(&job).await,
            Err(JobFailure::Permanent(_))
        ));

        let disabled = user(true);
        let handler = WelcomeEmailHandler::new(users_with(Some(disabled.clone())), never_mails());
        assert_eq!(handler.run(&welcome_job(disabled.id)).await, Ok(()));
    }

    #[tokio::test]
    async fn mail_failures_become_retries_or_dead_jobs() {
        let user = user(false);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let transient = WelcomeEmailHandler::new(
            users_with(Some(user.clone())),
            mailer(
                Err(MailError::Transient("451 try later".into())),
                sent.clone(),
            ),
        );
        assert!(matches!(
            transient.run(&welcome_job(user.id)).await,
            Err(JobFailure::Retry(message)) if message.contains("451")
        ));
        let rejected = WelcomeEmailHandler::new(
            users_with(Some(user.clone())),
            mailer(Err(MailError::Rejected("550 no such user".into())), sent),
        );
        assert!(matches!(
            rejected.run(&welcome_job(user.id)).await,
            Err(JobFailure::Permanent(message)) if message.contains("550")
        ));
    }

    #[tokio::test]
    async fn storage_failures_are_retried_and_bad_payloads_are_not() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_id()
            .returning(|_| Err(RepositoryError::Unavailable("connection lost".into())));
        let handler = WelcomeEmailHandler::new(Arc::new(users), never_mails());
        let job = welcome_job(UserId::from_uuid(Uuid::new_v4()));
        assert!(matches!(handler.run(&job).await, Err(JobFailure::Retry(_))));

        let mut garbled = job;
        garbled.payload = r#"{"user":"nobody"}"#.to_owned();
        assert!(matches!(
            handler.run(&garbled).await,
            Err(JobFailure::Permanent(_))
        ));
    }

    #[tokio::test]
    async fn a_resolution_notice_says_what_the_position_paid() {
        let user = user(false);
        let market = market(MarketStatus::Resolved, Some(Outcome::Yes));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let handler = ResolutionNoticeHandler::new(
            users_with(Some(user.clone())),
            markets_with(Some(market.clone())),
            mailer(Ok(()), sent.clone()),
        );
        assert_eq!(handler.kind().as_str(), RESOLUTION_NOTICE);
        let notice = notice(user.id, market.id);
        assert_eq!(handler.run(&notice_job(&notice)).await, Ok(()));
        let sent = sent.lock().expect("not poisoned");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to(), &user.email);
        assert_eq!(
            sent[0].subject(),
            "Market resolved YES: Will it rain in Paris?"
        );
        assert!(
            sent[0].body().contains(
                "Market Will it rain in Paris? resolved YES: your stake of 10.00 on NO paid 0.00"
            ),
            "{}",
            sent[0].body()
        );
    }

    #[tokio::test]
    async fn a_cancelled_market_is_told_as_such_and_an_open_one_is_not_notified() {
        let user = user(false);
        let cancelled = market(MarketStatus::Cancelled, None);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let handler = ResolutionNoticeHandler::new(
            users_with(Some(user.clone())),
            markets_with(Some(cancelled.clone())),
            mailer(Ok(()), sent.clone()),
        );
        let mut refund = notice(user.id, cancelled.id);
        refund.payout = refund.stake;
        assert_eq!(handler.run(&notice_job(&refund)).await, Ok(()));
        assert!(
            sent.lock().expect("not poisoned")[0]
                .body()
                .contains("was cancelled: your stake of 10.00 on NO paid 10.00")
        );

        let active = market(MarketStatus::Active, None);
        let handler = ResolutionNoticeHandler::new(
            users_with(Some(user.clone())),
            markets_with(Some(active.clone())),
            never_mails(),
        );
        assert!(matches!(
            handler.run(&notice_job(&notice(user.id, active.id))).await,
            Err(JobFailure::Permanent(_))
        ));
    }

    #[tokio::test]
    async fn a_missing_market_is_permanent() {
        let user = user(false);
        let handler = ResolutionNoticeHandler::new(
            users_with(Some(user.clone())),
            markets_with(None),
            never_mails(),
        );
        let job = notice_job(&notice(user.id, MarketId::from_uuid(Uuid::new_v4())));
        assert!(matches!(
            handler.run(&job).await,
            Err(JobFailure::Permanent(_))
        ));
    }

    #[test]
    fn long_subjects_are_shortened_to_fit() {
        let long = "x".repeat(300);
        let short = shortened(&long, Email::MAX_SUBJECT_CHARS);
        assert_eq!(short.chars().count(), Email::MAX_SUBJECT_CHARS);
        assert!(short.ends_with('…'));
        assert_eq!(shortened("short", 200), "short");
    }
}
