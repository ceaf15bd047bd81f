//! Desk settings a team changes while running, from the admin console: the wrap-up's problem types
//! and whether a wrap-up is required, the satisfaction survey, the timers, the automatic messages and
//! the upload limits.
//!
//! Each of these five sections is either the one `kefu.toml` (or the environment, or the built-in
//! defaults) gives, or, once an admin saved it, the one stored in the database (`meta` table, key
//! `settings:<section>`), which then wins until it is reset. The effective settings are kept in memory
//! and read by the desk on every use, so a change takes effect at once.
//!
//! Depends on `config`, `domain`, `storage` and `error` only.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::config::ConversationsConfig;
use crate::error::{Error, Result};
use crate::storage::SettingsRepository;

/// File types whose content the upload check knows; only these may be accepted.
pub const CHECKED_UPLOAD_TYPES: [&str; 10] = [
    "jpg", "jpeg", "png", "gif", "webp", "pdf", "docx", "xlsx", "txt", "zip",
];
/// Largest `max_upload_bytes` the console accepts (100 MiB).
pub const MAX_UPLOAD_BYTES_CEILING: usize = 100 << 20;
/// Most problem types.
pub const MAX_PROBLEM_TYPES: usize = 200;
/// Longest part of a problem type (`售后` of `售后/换货`), in characters.
pub const MAX_PROBLEM_TYPE_PART_CHARS: usize = 20;
/// Longest automatic message, in characters.
pub const MAX_AUTO_MESSAGE_CHARS: usize = 500;
/// The satisfaction survey's title.
pub const MAX_SURVEY_TITLE_CHARS: usize = 50;
/// Each label of the survey's points.
pub const MAX_SURVEY_LABEL_CHARS: usize = 10;
/// The survey's thanks.
pub const MAX_SURVEY_THANKS_CHARS: usize = 100;

/// The sections, as stored and as named in the API.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[schema(as = DeskSettingsSection)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Problem types and whether a wrap-up is required.
    WrapUp,
    /// The satisfaction survey.
    Survey,
    /// The desk's timers.
    Timers,
    /// Automatic messages to visitors.
    Messages,
    /// Upload types and limits.
    Uploads,
}

impl Section {
    /// Every section.
    pub const ALL: [Section; 5] = [
        Section::WrapUp,
        Section::Survey,
        Section::Timers,
        Section::Messages,
        Section::Uploads,
    ];

    /// The wire name (`wrap_up`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Section::WrapUp => "wrap_up",
            Section::Survey => "survey",
            Section::Timers => "timers",
            Section::Messages => "messages",
            Section::Uploads => "uploads",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Section> {
        Section::ALL
            .into_iter()
            .find(|section| section.as_str() == name)
    }

    fn key(self) -> String {
        format!("settings:{}", self.as_str())
    }
}

/// The wrap-up (会话小结).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WrapUpSettings {
    /// Problem types as `parent/child` paths (or a lone `parent`), in the order shown.
    pub problem_types: Vec<String>,
    /// Agents must write the wrap-up before the conversation leaves their list (the workbench
    /// offers no "later").
    #[serde(default)]
    pub required: bool,
}

/// When the visitor is asked to rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SurveyOffer {
    /// Whenever a served conversation ends (by the agent, the visitor or the idle timer).
    #[default]
    AnyEnd,
    /// Only when the agent ends it.
    AgentEnd,
    /// Never.
    Never,
}

/// The satisfaction survey (满意度评价).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveySettings {
    /// When it is offered.
    pub offer: SurveyOffer,
    /// Points of the scale: 2, 3 or 5. Ratings are stored on the five-point scale (1 and 5 at the
    /// ends), so statistics stay comparable when the scale changes.
    pub scale: u8,
    /// The question above the stars.
    pub title: String,
    /// One label per point, lowest first.
    pub labels: Vec<String>,
    /// Shown once the visitor rated.
    pub thanks: String,
}

impl Default for SurveySettings {
    fn default() -> Self {
        SurveySettings {
            offer: SurveyOffer::AnyEnd,
            scale: 5,
            title: "请为本次服务打分".into(),
            labels: ["非常不满意", "不满意", "一般", "满意", "非常满意"]
                .map(String::from)
                .to_vec(),
            thanks: "感谢您的评价，我们会继续努力！".into(),
        }
    }
}

impl SurveySettings {
    /// `stars` of this scale (1..=scale) on the five-point scale the desk stores.
    pub fn to_five_points(&self, stars: u8) -> Result<u8> {
        if !(1..=self.scale).contains(&stars) {
            return Err(Error::InvalidInput(format!(
                "stars must be 1 to {}",
                self.scale
            )));
        }
        if self.scale <= 1 {
            return Ok(5);
        }
        let scaled = 1 + u32::from(stars - 1) * 4 / u32::from(self.scale - 1);
        Ok(scaled as u8)
    }

    /// Whether a conversation that ended this way (`ended_by`) is offered the survey.
    pub fn offered_after(&self, ended_by: Option<&str>) -> bool {
        match self.offer {
            SurveyOffer::AnyEnd => true,
            SurveyOffer::AgentEnd => ended_by == Some("agent"),
            SurveyOffer::Never => false,
        }
    }
}

/// The desk's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerSettings {
    /// An assigned conversation not answered within this many seconds goes back to the queue.
    pub unanswered_secs: u64,
    /// A transfer not accepted within this many seconds stays with its sender.
    pub transfer_timeout_secs: u64,
    /// Minutes of the visitor's silence before the reminder.
    pub visitor_idle_remind_mins: u64,
    /// Minutes of the visitor's silence before the conversation ends.
    pub visitor_idle_end_mins: u64,
    /// Minutes in the queue before the visitor is offered to leave a message.
    pub queue_wait_limit_mins: u64,
}

/// Automatic messages to visitors (系统消息).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoMessages {
    /// Posted when the visitor has been silent `visitor_idle_remind_mins`.
    pub idle_reminder: String,
    /// Posted when the idle timer ends the conversation.
    pub idle_end: String,
    /// Posted when the agent ends the conversation.
    pub ended: String,
    /// Shown to a visitor queued longer than `queue_wait_limit_mins` (offering to leave a message).
    pub leave_message_prompt: String,
    /// Posted when a queued visitor leaves a message instead.
    pub message_left: String,
    /// Posted when the queue is full and the visitor's question became a message.
    pub queue_full: String,
}

impl Default for AutoMessages {
    fn default() -> Self {
        AutoMessages {
            idle_reminder: "您好，请问还有其他问题吗？如无回复，本次会话将自动结束。".into(),
            idle_end: "由于长时间未回复，会话已自动结束。".into(),
            ended: "会话已结束，感谢您的咨询。".into(),
            leave_message_prompt: "当前咨询人数较多，您可以继续等待，也可以留言".into(),
            message_left: "已收到您的留言，客服上线后会尽快回复您。".into(),
            queue_full: "当前咨询人数较多，排队已满。您的问题已作为留言提交，客服会尽快回复您。"
                .into(),
        }
    }
}

/// Upload types and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadSettings {
    /// Accepted extensions, from `jpg jpeg png gif webp pdf docx xlsx txt zip`; empty: no uploads.
    pub upload_types: Vec<String>,
    /// Largest file, in bytes.
    pub max_upload_bytes: usize,
    /// Files one conversation may hold.
    pub max_uploads_per_conversation: usize,
    /// Files one visitor may upload in all their conversations.
    pub max_uploads_per_visitor: usize,
}

/// Every section, as in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeskSettings {
    /// Problem types, wrap-up required.
    pub wrap_up: WrapUpSettings,
    /// The satisfaction survey.
    pub survey: SurveySettings,
    /// Timers.
    pub timers: TimerSettings,
    /// Automatic messages.
    pub messages: AutoMessages,
    /// Upload types and limits.
    pub uploads: UploadSettings,
}

/// Sections to replace; absent ones stay as they are.
// Named apart from the personal settings' `SettingsPatch`: utoipa keys schemas by name, and the
// admin route was described by the personal one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = DeskSettingsPatch)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// Problem types, wrap-up required.
    pub wrap_up: Option<WrapUpSettings>,
    /// The satisfaction survey.
    pub survey: Option<SurveySettings>,
    /// Timers.
    pub timers: Option<TimerSettings>,
    /// Automatic messages.
    pub messages: Option<AutoMessages>,
    /// Upload types and limits.
    pub uploads: Option<UploadSettings>,
}

/// The settings in force and where they come from.
#[derive(Debug, Clone)]
pub struct Effective {
    /// Every section.
    pub settings: DeskSettings,
    /// The conversations configuration with the stored sections applied: what the desk reads.
    pub config: Arc<ConversationsConfig>,
    /// Sections saved in the database (the others follow the configuration file).
    pub customized: BTreeSet<Section>,
}

/// A change of the settings, for the audit log: `section.field: before → after` per changed field.
pub type Changes = Vec<String>;

/// The desk settings: configuration defaults with the sections saved in the console applied.
pub struct SettingsService {
    settings: Arc<dyn SettingsRepository>,
    base: ConversationsConfig,
    current: RwLock<Arc<Effective>>,
    /// One change at a time, so two admins saving at once never interleave read and write.
    writing: Mutex<()>,
}

impl std::fmt::Debug for SettingsService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SettingsService")
            .field("customized", &self.current().customized)
            .finish_non_exhaustive()
    }
}

/// What the database holds: the sections saved so far.
#[derive(Debug, Clone, Default)]
struct Stored {
    wrap_up: Option<WrapUpSettings>,
    survey: Option<SurveySettings>,
    timers: Option<TimerSettings>,
    messages: Option<AutoMessages>,
    uploads: Option<UploadSettings>,
}

impl SettingsService {
    /// Reads the saved sections from `settings` over the configuration `base`.
    ///
    /// Fails with [`Error::Storage`] when a saved section cannot be read.
    pub fn open(
        settings: Arc<dyn SettingsRepository>,
        base: ConversationsConfig,
    ) -> Result<SettingsService> {
        let stored = read_stored(settings.as_ref())?;
        let current = RwLock::new(Arc::new(compose(&base, &stored)));
        Ok(SettingsService {
            settings,
            base,
            current,
            writing: Mutex::new(()),
        })
    }

    /// The settings in force.
    pub fn current(&self) -> Arc<Effective> {
        Arc::clone(&self.current.read())
    }

    /// Validates and saves the given sections; answers the settings then in force and what changed.
    ///
    /// Fails with [`Error::InvalidInput`] (nothing saved) when any section is not acceptable.
    pub fn update(&self, patch: SettingsPatch) -> Result<(Arc<Effective>, Changes)> {
        let wrap_up = patch.wrap_up.map(validate_wrap_up).transpose()?;
        let survey = patch.survey.map(validate_survey).transpose()?;
        let timers = patch.timers.map(validate_timers).transpose()?;
        let messages = patch.messages.map(validate_messages).transpose()?;
        let uploads = patch.uploads.map(validate_uploads).transpose()?;
        let _writing = self.writing.lock();
        let before = self.current();
        let mut stored = read_stored(self.settings.as_ref())?;
        if let Some(section) = wrap_up {
            self.settings.put(&Section::WrapUp.key(), &section)?;
            stored.wrap_up = Some(section);
        }
        if let Some(section) = survey {
            self.settings.put(&Section::Survey.key(), &section)?;
            stored.survey = Some(section);
        }
        if let Some(section) = timers {
            self.settings.put(&Section::Timers.key(), &section)?;
            stored.timers = Some(section);
        }
        if let Some(section) = messages {
            self.settings.put(&Section::Messages.key(), &section)?;
            stored.messages = Some(section);
        }
        if let Some(section) = uploads {
            self.settings.put(&Section::Uploads.key(), &section)?;
            stored.uploads = Some(section);
        }
        let after = Arc::new(compose(&self.base, &stored));
        *self.current.write() = Arc::clone(&after);
        Ok((
            Arc::clone(&after),
            differences(&before.settings, &after.settings),
        ))
    }

    /// Forgets the saved `section`: the configuration file's (or the built-in) value applies again.
    pub fn reset(&self, section: Section) -> Result<(Arc<Effective>, Changes)> {
        let _writing = self.writing.lock();
        let before = self.current();
        self.settings.remove_document(&section.key())?;
        let stored = read_stored(self.settings.as_ref())?;
        let after = Arc::new(compose(&self.base, &stored));
        *self.current.write() = Arc::clone(&after);
        Ok((
            Arc::clone(&after),
            differences(&before.settings, &after.settings),
        ))
    }
}

fn read_stored(settings: &dyn SettingsRepository) -> Result<Stored> {
    Ok(Stored {
        wrap_up: settings.get(&Section::WrapUp.key())?,
        survey: settings.get(&Section::Survey.key())?,
        timers: settings.get(&Section::Timers.key())?,
        messages: settings.get(&Section::Messages.key())?,
        uploads: settings.get(&Section::Uploads.key())?,
    })
}

/// The configuration's sections with the saved ones over them.
fn compose(base: &ConversationsConfig, stored: &Stored) -> Effective {
    let wrap_up = stored.wrap_up.clone().unwrap_or_else(|| WrapUpSettings {
        problem_types: base.problem_types.clone(),
        required: false,
    });
    let timers = stored.timers.unwrap_or(TimerSettings {
        unanswered_secs: base.unanswered_secs,
        transfer_timeout_secs: base.transfer_timeout_secs,
        visitor_idle_remind_mins: base.visitor_idle_remind_mins,
        visitor_idle_end_mins: base.visitor_idle_end_mins,
        queue_wait_limit_mins: base.queue_wait_limit_mins,
    });
    let uploads = stored.uploads.clone().unwrap_or_else(|| UploadSettings {
        upload_types: base.upload_types.clone(),
        max_upload_bytes: base.max_upload_bytes,
        max_uploads_per_conversation: base.max_uploads_per_conversation,
        max_uploads_per_visitor: base.max_uploads_per_visitor,
    });
    let mut config = base.clone();
    config.problem_types = wrap_up.problem_types.clone();
    config.unanswered_secs = timers.unanswered_secs;
    config.transfer_timeout_secs = timers.transfer_timeout_secs;
    config.visitor_idle_remind_mins = timers.visitor_idle_remind_mins;
    config.visitor_idle_end_mins = timers.visitor_idle_end_mins;
    config.queue_wait_limit_mins = timers.queue_wait_limit_mins;
    config.upload_types = uploads.upload_types.clone();
    config.max_upload_bytes = uploads.max_upload_bytes;
    config.max_uploads_per_conversation = uploads.max_uploads_per_conversation;
    config.max_uploads_per_visitor = uploads.max_uploads_per_visitor;
    let customized = [
        (Section::WrapUp, stored.wrap_up.is_some()),
        (Section::Survey, stored.survey.is_some()),
        (Section::Timers, stored.timers.is_some()),
        (Section::Messages, stored.messages.is_some()),
        (Section::Uploads, stored.uploads.is_some()),
    ]
    .into_iter()
    .filter(|(_, saved)| *saved)
    .map(|(section, _)| section)
    .collect();
    Effective {
        settings: DeskSettings {
            wrap_up,
            survey: stored.survey.clone().unwrap_or_default(),
            timers,
            messages: stored.messages.clone().unwrap_or_default(),
            uploads,
        },
        config: Arc::new(config),
        customized,
    }
}

/// `section.field: before → after` for every field whose JSON differs.
fn differences(before: &DeskSettings, after: &DeskSettings) -> Changes {
    let (Ok(serde_json::Value::Object(before)), Ok(serde_json::Value::Object(after))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    for (section, after_section) in &after {
        let before_section = before.get(section).cloned().unwrap_or_default();
        let (serde_json::Value::Object(before_fields), serde_json::Value::Object(after_fields)) =
            (before_section, after_section)
        else {
            continue;
        };
        for (field, value) in after_fields {
            let old = before_fields.get(field).cloned().unwrap_or_default();
            if old == *value {
                continue;
            }
            match (string_list(&old), string_list(value)) {
                // Lists (problem types, upload types, labels) by what was added and removed.
                (Some(old), Some(new)) if old.len() + new.len() > 6 => {
                    let mut edits: Vec<String> = new
                        .iter()
                        .filter(|item| !old.contains(item))
                        .map(|item| format!("+{item}"))
                        .collect();
                    edits.extend(
                        old.iter()
                            .filter(|item| !new.contains(item))
                            .map(|item| format!("-{item}")),
                    );
                    if edits.is_empty() {
                        edits.push("reordered".into());
                    }
                    changes.push(format!("{section}.{field}: {}", edits.join(", ")));
                }
                _ => changes.push(format!(
                    "{section}.{field}: {} → {}",
                    short_json(&old),
                    short_json(value)
                )),
            }
        }
    }
    changes
}

/// The strings of a JSON list of strings.
fn string_list(value: &serde_json::Value) -> Option<Vec<&str>> {
    value
        .as_array()?
        .iter()
        .map(serde_json::Value::as_str)
        .collect()
}

/// A value for the audit log: strings without quotes, lists and numbers as JSON, cut at 300
/// characters.
fn short_json(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 300 {
        let cut: String = text.chars().take(300).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput(message.into())
}

/// A text of 1..=`max` characters without control characters (line breaks allowed), trimmed.
fn checked_text(field: &str, text: &str, max: usize) -> Result<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid(format!("`{field}` cannot be empty")));
    }
    crate::domain::limits::check_length(field, text, max)?;
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(format!("`{field}` cannot hold control characters")));
    }
    Ok(text.to_string())
}

/// Trims each problem type and its parts; refuses empty parts, more than two levels, duplicates and
/// lists that are empty or too long.
pub fn validate_wrap_up(section: WrapUpSettings) -> Result<WrapUpSettings> {
    if section.problem_types.is_empty() || section.problem_types.len() > MAX_PROBLEM_TYPES {
        return Err(invalid(format!(
            "there must be 1 to {MAX_PROBLEM_TYPES} problem types"
        )));
    }
    let mut seen = BTreeSet::new();
    let mut problem_types = Vec::new();
    for raw in &section.problem_types {
        let parts: Vec<&str> = raw.split('/').map(str::trim).collect();
        let well_formed = parts.len() <= 2
            && parts.iter().all(|part| {
                !part.is_empty()
                    && part.chars().count() <= MAX_PROBLEM_TYPE_PART_CHARS
                    && !part.chars().any(char::is_control)
            });
        if !well_formed {
            return Err(invalid(format!(
                "problem type `{raw}` must be `parent` or `parent/child`, each part 1-{MAX_PROBLEM_TYPE_PART_CHARS} characters"
            )));
        }
        let path = parts.join("/");
        if !seen.insert(path.clone()) {
            return Err(invalid(format!("problem type `{path}` is listed twice")));
        }
        problem_types.push(path);
    }
    Ok(WrapUpSettings {
        problem_types,
        required: section.required,
    })
}

/// A scale of 2, 3 or 5 points with one label of 1-10 characters per point; title and thanks set.
pub fn validate_survey(section: SurveySettings) -> Result<SurveySettings> {
    if ![2, 3, 5].contains(&section.scale) {
        return Err(invalid("the survey scale must be 2, 3 or 5 points"));
    }
    if section.labels.len() != usize::from(section.scale) {
        return Err(invalid(format!(
            "the survey needs {} labels, one per point",
            section.scale
        )));
    }
    let labels = section
        .labels
        .iter()
        .map(|label| checked_text("survey.labels", label, MAX_SURVEY_LABEL_CHARS))
        .collect::<Result<Vec<_>>>()?;
    Ok(SurveySettings {
        offer: section.offer,
        scale: section.scale,
        title: checked_text("survey.title", &section.title, MAX_SURVEY_TITLE_CHARS)?,
        labels,
        thanks: checked_text("survey.thanks", &section.thanks, MAX_SURVEY_THANKS_CHARS)?,
    })
}

/// Timers within sensible bounds; the conversation ends after the reminder.
pub fn validate_timers(section: TimerSettings) -> Result<TimerSettings> {
    let in_range = |name: &str, value: u64, low: u64, high: u64| {
        if (low..=high).contains(&value) {
            Ok(())
        } else {
            Err(invalid(format!("{name} must be between {low} and {high}")))
        }
    };
    in_range("unanswered_secs", section.unanswered_secs, 10, 3600)?;
    in_range(
        "transfer_timeout_secs",
        section.transfer_timeout_secs,
        10,
        3600,
    )?;
    in_range(
        "visitor_idle_remind_mins",
        section.visitor_idle_remind_mins,
        1,
        1440,
    )?;
    in_range(
        "visitor_idle_end_mins",
        section.visitor_idle_end_mins,
        1,
        1440,
    )?;
    in_range(
        "queue_wait_limit_mins",
        section.queue_wait_limit_mins,
        1,
        1440,
    )?;
    if section.visitor_idle_end_mins <= section.visitor_idle_remind_mins {
        return Err(invalid(
            "visitor_idle_end_mins must be longer than visitor_idle_remind_mins",
        ));
    }
    Ok(section)
}

/// Every message 1-500 characters.
pub fn validate_messages(section: AutoMessages) -> Result<AutoMessages> {
    let max = MAX_AUTO_MESSAGE_CHARS;
    Ok(AutoMessages {
        idle_reminder: checked_text("messages.idle_reminder", &section.idle_reminder, max)?,
        idle_end: checked_text("messages.idle_end", &section.idle_end, max)?,
        ended: checked_text("messages.ended", &section.ended, max)?,
        leave_message_prompt: checked_text(
            "messages.leave_message_prompt",
            &section.leave_message_prompt,
            max,
        )?,
        message_left: checked_text("messages.message_left", &section.message_left, max)?,
        queue_full: checked_text("messages.queue_full", &section.queue_full, max)?,
    })
}

/// Known types only (lower-cased, each once) and limits within their bounds.
pub fn validate_uploads(section: UploadSettings) -> Result<UploadSettings> {
    let mut upload_types = Vec::new();
    for raw in &section.upload_types {
        let extension = raw.trim().trim_start_matches('.').to_lowercase();
        if !CHECKED_UPLOAD_TYPES.contains(&extension.as_str()) {
            return Err(invalid(format!(
                "upload type `{raw}` is not one of {}",
                CHECKED_UPLOAD_TYPES.join(", ")
            )));
        }
        if !upload_types.contains(&extension) {
            upload_types.push(extension);
        }
    }
    if !(1024..=MAX_UPLOAD_BYTES_CEILING).contains(&section.max_upload_bytes) {
        return Err(invalid(format!(
            "max_upload_bytes must be between 1024 and {MAX_UPLOAD_BYTES_CEILING}"
        )));
    }
    if !(1..=1000).contains(&section.max_uploads_per_conversation) {
        return Err(invalid(
            "max_uploads_per_conversation must be between 1 and 1000",
        ));
    }
    if !(1..=10_000).contains(&section.max_uploads_per_visitor) {
        return Err(invalid(
            "max_uploads_per_visitor must be between 1 and 10000",
        ));
    }
    Ok(UploadSettings {
        upload_types,
        ..section
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> SettingsService {
        let store = crate::storage::Store::temporary().unwrap();
        let settings = Arc::new(crate::storage::StoredSettings::new(&store));
        SettingsService::open(settings, ConversationsConfig::default()).unwrap()
    }

    #[test]
    fn the_configuration_applies_until_a_section_is_saved_and_again_after_a_reset() {
        let settings = service();
        let base = ConversationsConfig::default();
        assert_eq!(
            settings.current().config.unanswered_secs,
            base.unanswered_secs
        );
        assert!(settings.current().customized.is_empty());
        let timers = TimerSettings {
            unanswered_secs: 30,
            ..settings.current().settings.timers
        };
        let (effective, changes) = settings
            .update(SettingsPatch {
                timers: Some(timers),
                ..SettingsPatch::default()
            })
            .unwrap();
        assert_eq!(effective.config.unanswered_secs, 30);
        assert_eq!(
            changes,
            vec!["timers.unanswered_secs: 120 → 30".to_string()]
        );
        assert_eq!(effective.customized, BTreeSet::from([Section::Timers]));
        let (effective, _) = settings.reset(Section::Timers).unwrap();
        assert_eq!(effective.config.unanswered_secs, base.unanswered_secs);
    }

    #[test]
    fn bad_sections_are_refused_and_nothing_is_saved() {
        let settings = service();
        let mut wrap_up = settings.current().settings.wrap_up.clone();
        wrap_up.problem_types.push("a/b/c".into());
        let error = settings
            .update(SettingsPatch {
                wrap_up: Some(wrap_up),
                timers: Some(TimerSettings {
                    visitor_idle_end_mins: 1,
                    visitor_idle_remind_mins: 5,
                    ..settings.current().settings.timers
                }),
                ..SettingsPatch::default()
            })
            .unwrap_err();
        assert!(error.to_string().contains("a/b/c"), "{error}");
        assert!(settings.current().customized.is_empty());
        let duplicate = WrapUpSettings {
            problem_types: vec!["售后/换货".into(), " 售后 / 换货 ".into()],
            required: false,
        };
        assert!(validate_wrap_up(duplicate).is_err());
        let survey = SurveySettings {
            scale: 3,
            ..SurveySettings::default()
        };
        assert!(
            validate_survey(survey).is_err(),
            "five labels for three points"
        );
        let uploads = UploadSettings {
            upload_types: vec!["exe".into()],
            max_upload_bytes: 1 << 20,
            max_uploads_per_conversation: 10,
            max_uploads_per_visitor: 10,
        };
        assert!(validate_uploads(uploads).is_err());
    }

    #[test]
    fn ratings_of_shorter_scales_land_on_the_five_point_scale() {
        let mut survey = SurveySettings::default();
        assert_eq!(survey.to_five_points(4).unwrap(), 4);
        survey.scale = 3;
        assert_eq!(
            [1, 2, 3].map(|stars| survey.to_five_points(stars).unwrap()),
            [1, 3, 5]
        );
        assert!(survey.to_five_points(4).is_err());
        survey.scale = 2;
        assert_eq!(
            [1, 2].map(|stars| survey.to_five_points(stars).unwrap()),
            [1, 5]
        );
    }
}
