//! What a key press or command asks the app to do. Views return an
//! [`Action`] from `handle_event`; only [`crate::app::App`] carries it out,
//! so every effect (switching views, network writes, quitting) has one place.

use crate::views::Tab;

/// A change the app makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    SwitchTab(Tab),
    OpenTenant(String),
    Back,
    ToggleHelp,
    OpenFilter,
    OpenCommand,
    /// Ask for confirmation (and a TOTP code where needed), then run.
    Write(WriteAction),
    Refresh,
    SwitchContext(String),
    /// A message for the status line.
    Status(String),
}

/// A write to the core (only with `--write`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteAction {
    Suspend {
        id: String,
        label: String,
    },
    Resume {
        id: String,
        label: String,
    },
    Terminate {
        id: String,
        label: String,
    },
    Purge,
    /// Approve a sub-processor's pending proposal and/or change.
    ApproveSubprocessor {
        id: String,
        label: String,
        /// When what the user saw waiting was announced: the approval covers
        /// that and nothing announced since (409 `stale_approval`).
        announced_at: String,
    },
}

impl WriteAction {
    /// Whether the API wants a TOTP code for it.
    pub fn needs_totp(&self) -> bool {
        matches!(
            self,
            WriteAction::Terminate { .. }
                | WriteAction::Purge
                | WriteAction::ApproveSubprocessor { .. }
        )
    }

    pub fn verb(&self) -> &'static str {
        match self {
            WriteAction::Suspend { .. } => "suspend",
            WriteAction::Resume { .. } => "resume",
            WriteAction::Terminate { .. } => "terminate",
            WriteAction::Purge => "purge",
            WriteAction::ApproveSubprocessor { .. } => "approve",
        }
    }

    /// The confirmation question.
    pub fn question(&self) -> String {
        match self {
            WriteAction::Suspend { label, .. } => format!(
                "Suspend {label}? Its channels will refuse new messages; data is kept."
            ),
            WriteAction::Resume { label, .. } => {
                format!("Resume {label}? Its channels will accept messages again.")
            }
            WriteAction::Terminate { label, .. } => format!(
                "TERMINATE {label}? Ingress closes for good and its end-user data is scheduled for deletion in 30 days."
            ),
            WriteAction::Purge => {
                "Run a purge now? Every record past its retention date is deleted, and data keys of purged tenants destroyed.".into()
            }
            WriteAction::ApproveSubprocessor { label, .. } => format!(
                "Approve the pending sub-processor change for {label}? It takes effect on its effective date (at once if that has passed), objections notwithstanding."
            ),
        }
    }
}
