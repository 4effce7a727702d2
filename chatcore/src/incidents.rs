//! Personal-data breach records and their notification clocks (privacy
//! policy §11), independent of HTTP.
//!
//! Every clock runs from `aware_at`: each affected tenant's controller
//! within 48 hours (the platform as processor, §11.1); the authority within
//! 72 hours, only where the platform is the controller (§11.2); the people
//! themselves "without undue delay" when the risk is high, so that clock's
//! deadline is `aware_at` itself and it is overdue until a notification is
//! recorded. A record is one JSON document ([`IncidentDoc`]), kept 3 years
//! from awareness.

use c24_api::admin::incidents::{
    ControllerClock, Incident, IncidentClock, IncidentClocks, IncidentNotification, NotifyTarget,
};
use serde::{Deserialize, Serialize};

use crate::clock::{Millis, rfc3339};

const HOUR_MS: Millis = 3_600_000;
/// Processor → controller (§11.1).
pub const CONTROLLER_DEADLINE_MS: Millis = 48 * HOUR_MS;
/// Controller → supervisory authority (§11.2, GDPR Art. 33).
pub const AUTHORITY_DEADLINE_MS: Millis = 72 * HOUR_MS;
/// Incident records are kept at least 3 years from the incident (§6).
pub const RETENTION_MONTHS: u32 = 36;

/// The stored record (timestamps in ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentDoc {
    pub aware_at: Millis,
    pub recorded_at: Millis,
    pub recorded_by: String,
    pub nature: String,
    pub categories: Vec<String>,
    pub records: u64,
    pub subjects: u64,
    pub affected_tenants: Vec<String>,
    pub consequences: String,
    pub measures: String,
    pub platform_is_controller: bool,
    pub high_risk: bool,
    #[serde(default)]
    pub notifications: Vec<NotificationDoc>,
    pub purge_after: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationDoc {
    pub to: NotifyTarget,
    #[serde(default)]
    pub tenant_id: Option<String>,
    pub at: Millis,
    pub by: String,
}

/// One clock: its deadline and the notification that stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub deadline: Millis,
    pub notified: Option<Millis>,
}

impl Clock {
    /// Past the deadline with no notification.
    pub fn overdue(&self, now: Millis) -> bool {
        self.notified.is_none() && now > self.deadline
    }

    /// Seconds from the notification (or now) to the deadline.
    pub fn seconds_left(&self, now: Millis) -> i64 {
        (self.deadline - self.notified.unwrap_or(now)).div_euclid(1000)
    }

    fn view(&self, now: Millis) -> IncidentClock {
        IncidentClock {
            deadline_at: rfc3339(self.deadline),
            notified_at: self.notified.map(rfc3339),
            overdue: self.overdue(now),
            seconds_left: self.seconds_left(now),
        }
    }
}

impl IncidentDoc {
    pub fn parse(doc: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(doc)
    }

    fn notified(&self, to: NotifyTarget, tenant: Option<&str>) -> Option<Millis> {
        self.notifications
            .iter()
            .find(|n| n.to == to && n.tenant_id.as_deref() == tenant)
            .map(|n| n.at)
    }

    /// Each affected tenant's controller clock.
    pub fn controller_clocks(&self) -> Vec<(String, Clock)> {
        self.affected_tenants
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    Clock {
                        deadline: self.aware_at + CONTROLLER_DEADLINE_MS,
                        notified: self.notified(NotifyTarget::Controller, Some(t)),
                    },
                )
            })
            .collect()
    }

    pub fn authority_clock(&self) -> Option<Clock> {
        self.platform_is_controller.then(|| Clock {
            deadline: self.aware_at + AUTHORITY_DEADLINE_MS,
            notified: self.notified(NotifyTarget::Authority, None),
        })
    }

    pub fn subjects_clock(&self) -> Option<Clock> {
        self.high_risk.then(|| Clock {
            deadline: self.aware_at,
            notified: self.notified(NotifyTarget::Subjects, None),
        })
    }

    fn all_clocks(&self) -> Vec<Clock> {
        let mut v: Vec<Clock> = self.controller_clocks().into_iter().map(|c| c.1).collect();
        v.extend(self.authority_clock());
        v.extend(self.subjects_clock());
        v
    }

    /// The earliest deadline still without a notification; `None`: closed.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.all_clocks()
            .into_iter()
            .filter(|c| c.notified.is_none())
            .map(|c| c.deadline)
            .min()
    }

    /// The clock a notification to `to` (and tenant) stops, if there is one.
    pub fn clock_for(&self, to: NotifyTarget, tenant: Option<&str>) -> Option<Clock> {
        match (to, tenant) {
            (NotifyTarget::Controller, Some(t)) => self
                .controller_clocks()
                .into_iter()
                .find(|c| c.0 == t)
                .map(|c| c.1),
            (NotifyTarget::Authority, None) => self.authority_clock(),
            (NotifyTarget::Subjects, None) => self.subjects_clock(),
            _ => None,
        }
    }

    pub fn view(&self, id: &str, now: Millis) -> Incident {
        let clocks = IncidentClocks {
            controllers: self
                .controller_clocks()
                .into_iter()
                .map(|(tenant_id, c)| {
                    let v = c.view(now);
                    ControllerClock {
                        tenant_id,
                        deadline_at: v.deadline_at,
                        notified_at: v.notified_at,
                        overdue: v.overdue,
                        seconds_left: v.seconds_left,
                    }
                })
                .collect(),
            authority: self.authority_clock().map(|c| c.view(now)),
            subjects: self.subjects_clock().map(|c| c.view(now)),
        };
        let all = self.all_clocks();
        Incident {
            id: id.to_string(),
            aware_at: rfc3339(self.aware_at),
            recorded_at: rfc3339(self.recorded_at),
            recorded_by: self.recorded_by.clone(),
            nature: self.nature.clone(),
            categories: self.categories.clone(),
            records: self.records,
            subjects: self.subjects,
            affected_tenants: self.affected_tenants.clone(),
            consequences: self.consequences.clone(),
            measures: self.measures.clone(),
            platform_is_controller: self.platform_is_controller,
            high_risk: self.high_risk,
            clocks,
            open: all.iter().any(|c| c.notified.is_none()),
            overdue: all.iter().any(|c| c.overdue(now)),
            notifications: self
                .notifications
                .iter()
                .map(|n| IncidentNotification {
                    to: n.to,
                    tenant_id: n.tenant_id.clone(),
                    at: rfc3339(n.at),
                    by: n.by.clone(),
                })
                .collect(),
            purge_after: rfc3339(self.purge_after),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(tenants: &[&str], controller: bool, high_risk: bool) -> IncidentDoc {
        IncidentDoc {
            aware_at: 1_000_000,
            recorded_at: 1_000_000,
            recorded_by: "otto".into(),
            nature: "n".into(),
            categories: vec!["c".into()],
            records: 1,
            subjects: 1,
            affected_tenants: tenants.iter().map(|t| t.to_string()).collect(),
            consequences: "c".into(),
            measures: "m".into(),
            platform_is_controller: controller,
            high_risk,
            notifications: Vec::new(),
            purge_after: 0,
        }
    }

    #[test]
    fn the_48_hour_clock_turns_overdue_at_48_hours_and_not_before() {
        let d = doc(&["t1"], false, false);
        let clock = d.controller_clocks()[0].1;
        let at48 = d.aware_at + CONTROLLER_DEADLINE_MS;
        assert!(!clock.overdue(at48 - 1));
        assert!(!clock.overdue(at48));
        assert!(clock.overdue(at48 + 1));
        assert_eq!(clock.seconds_left(at48 - 60_000), 60);
        assert_eq!(clock.seconds_left(at48 + 60_000), -60);
        assert!(d.authority_clock().is_none());
        assert!(d.subjects_clock().is_none());
        assert_eq!(d.next_deadline(), Some(at48));
    }

    #[test]
    fn a_notification_stops_its_clock_and_a_late_one_stays_negative() {
        let mut d = doc(&["t1", "t2"], true, true);
        // Without undue delay: due at once.
        assert!(
            d.subjects_clock()
                .is_some_and(|c| c.overdue(d.aware_at + 1))
        );
        let late = d.aware_at + AUTHORITY_DEADLINE_MS + 3_600_000;
        d.notifications.push(NotificationDoc {
            to: NotifyTarget::Authority,
            tenant_id: None,
            at: late,
            by: "otto".into(),
        });
        let a = d.authority_clock().unwrap_or(Clock {
            deadline: 0,
            notified: None,
        });
        assert!(!a.overdue(late + 10));
        assert_eq!(a.seconds_left(late + 10), -3600);
        assert!(d.clock_for(NotifyTarget::Controller, Some("t3")).is_none());
        assert!(d.clock_for(NotifyTarget::Controller, Some("t2")).is_some());
        assert!(d.clock_for(NotifyTarget::Authority, Some("t2")).is_none());
        let v = d.view("i1", late);
        assert!(v.open && v.overdue);
    }
}
