//! Version numbers from version ids, and labels from staging labels.

use super::*;

/// What `DescribeSecret` (or a listing) tells about a secret.
#[derive(Debug)]
pub(super) struct State {
    pub(super) deleted_at: Option<i64>,
    pub(super) versions: Vec<Version>,
    pub(super) tags: Metadata,
}

impl State {
    pub(super) fn holder(&self, stage: &str) -> Option<&Version> {
        self.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == stage))
    }

    pub(super) fn current(&self) -> u64 {
        self.holder(CURRENT).map_or(0, |v| v.number)
    }

    pub(super) fn latest(&self) -> u64 {
        self.versions.iter().map(|v| v.number).max().unwrap_or(0)
    }
}

/// One version, numbered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Version {
    pub(super) id: String,
    pub(super) number: u64,
    pub(super) stages: Vec<String>,
    pub(super) created_at: i64,
}

impl Version {
    pub(super) fn labels(&self) -> Vec<Label> {
        let mut labels: Vec<Label> = self.stages.iter().filter_map(|s| label_of(s)).collect();
        labels.sort_by_key(|l| l.as_str());
        labels
    }
}

/// The version id tresor writes for version `number`.
pub(super) fn version_token(number: u64) -> String {
    format!("{TOKEN_PREFIX}{number:020}")
}

/// The number in a tresor version id.
pub(super) fn token_number(id: &str) -> Option<u64> {
    let digits = id.strip_prefix(TOKEN_PREFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n > 0)
}

/// Numbers versions: tresor's by their ids, others in creation order (ties
/// in listing order), each one past the highest number before it.
pub(super) fn number_versions(mut listed: Vec<(String, i64, Vec<String>)>) -> Vec<Version> {
    listed.sort_by_key(|(_, created, _)| *created);
    let mut highest = 0;
    listed
        .into_iter()
        .map(|(id, created_at, stages)| {
            let number = token_number(&id).unwrap_or(highest + 1);
            highest = highest.max(number);
            Version {
                id,
                number,
                stages,
                created_at,
            }
        })
        .collect()
}

pub(super) fn stage_of(label: Label) -> &'static str {
    match label {
        Label::Current => CURRENT,
        Label::Pending => PENDING,
        Label::Previous => PREVIOUS,
    }
}

pub(super) fn label_of(stage: &str) -> Option<Label> {
    match stage {
        CURRENT => Some(Label::Current),
        PENDING => Some(Label::Pending),
        PREVIOUS => Some(Label::Previous),
        _ => None,
    }
}

pub(super) fn millis(t: &DateTime) -> i64 {
    t.to_millis().unwrap_or(0)
}

pub(super) fn tags_to_metadata(tags: &[Tag]) -> Metadata {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Whether `name` uses only the characters Secrets Manager allows in names.
pub(super) fn valid_aws_name(name: &str) -> bool {
    name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}
