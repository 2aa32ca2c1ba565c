//! Worklists rendered once for everyone who reads the same page of alerts.
//!
//! Every nurse of a team asks for the same worklist over and over, and the
//! store already hands every reader of an unchanged page the very same
//! [`AlertPage`] ([`Store::shared_alerts`]). What the worklist derives from
//! it (the groups, the reasons in words, the JSON or the HTML rows) is the
//! same for all of them too, except for the minutes waited and left, which
//! move with the clock. So the rendered text is kept with the page it came
//! from, per form (JSON, or HTML rows in a language and time zone), until
//! the first moment one of those minutes would read differently
//! ([`unchanged_until`]). A new page (an alert changed, or the store's own
//! cache expired) is rendered afresh; a store that keeps no pages hands out
//! a new one on every read, so nothing is served twice from it.
//!
//! Who may see a page is not this module's concern: a caller reaches a
//! page only through its own team-scoped query, and the page is the key.
//!
//! [`Store::shared_alerts`]: crate::store::Store::shared_alerts

use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use super::{group, Lang, PatientGroup};
use crate::domain::Timestamp;
use crate::store::{AlertListItem, AlertPage};

/// What a page is rendered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The `patients` array of `GET /api/v1/worklist`.
    Json(Lang),
    /// The rows of the worklist page, with times in a zone.
    Rows(Lang, chrono_tz::Tz),
}

impl Form {
    fn lang(self) -> Lang {
        match self {
            Form::Json(lang) | Form::Rows(lang, _) => lang,
        }
    }
}

struct Rendered {
    page: Arc<AlertPage>,
    form: Form,
    /// The first moment the output would differ.
    stale_from: Timestamp,
    output: Arc<str>,
}

/// Kept renderings; a few teams, each in a few forms, are being read at
/// any time.
const MAX_RENDERED: usize = 64;

static RENDERED: LazyLock<Mutex<Vec<Rendered>>> = LazyLock::new(Mutex::default);

fn kept() -> std::sync::MutexGuard<'static, Vec<Rendered>> {
    RENDERED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Returns `page` grouped at `now` and rendered by `render` as `form`:
/// kept from an earlier call with the same page and form while its minutes
/// still read the same, else rendered now (and kept).
///
/// # Errors
/// What `render` returns (nothing is kept then).
pub fn rendered<E>(
    page: &Arc<AlertPage>,
    form: Form,
    now: Timestamp,
    render: impl FnOnce(&[PatientGroup]) -> Result<String, E>,
) -> Result<Arc<str>, E> {
    if let Some(hit) = kept()
        .iter()
        .find(|kept| Arc::ptr_eq(&kept.page, page) && kept.form == form && now < kept.stale_from)
    {
        return Ok(Arc::clone(&hit.output));
    }
    let groups = group(page.items.clone(), now, form.lang());
    let output: Arc<str> = render(&groups)?.into();
    let stale_from = unchanged_until(&page.items, now);
    let mut kept = kept();
    // A page only this list still holds has been replaced in the store; an
    // older rendering of this page and form is replaced now.
    kept.retain(|other| {
        Arc::strong_count(&other.page) > 1
            && !(Arc::ptr_eq(&other.page, page) && other.form == form)
    });
    if kept.len() >= MAX_RENDERED {
        kept.remove(0);
    }
    kept.push(Rendered {
        page: Arc::clone(page),
        form,
        stale_from,
        output: Arc::clone(&output),
    });
    Ok(output)
}

/// Returns the first moment after `now` at which [`group`] of `items`
/// would give other minutes waited or left (and so, other overdue flags)
/// than at `now`: the earliest next whole minute since an alert was raised
/// or before its response target.
pub fn unchanged_until(items: &[AlertListItem], now: Timestamp) -> Timestamp {
    const MINUTE: i64 = 60_000_000;
    let now = now.micros();
    let stale_from = items.iter().fold(i64::MAX, |stale_from, item| {
        let (opened, respond_by) = (
            item.alert.opened_at.micros(),
            item.alert.respond_by.micros(),
        );
        // Whole minutes waited: floor((now - opened) / minute), at least 0.
        let waited = (now - opened).max(0) / MINUTE;
        let waited_changes = opened + (waited + 1) * MINUTE;
        // Whole minutes left: floor((respond_by - now) / minute); the same
        // while now <= respond_by - left minutes.
        let left = (respond_by - now).div_euclid(MINUTE);
        let left_changes = respond_by - left * MINUTE + 1;
        stale_from.min(waited_changes).min(left_changes)
    });
    Timestamp(stale_from)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::alert_book::AlertStatus;

    const MINUTE: i64 = 60_000_000;
    const NOW: i64 = 1_800_000_000_000_000;

    /// An alert raised at `opened` (µs) with `target_minutes` to respond.
    fn item(opened: i64, target_minutes: i64, status: AlertStatus) -> AlertListItem {
        let json = serde_json::json!({"factors": []});
        let mut item = super::super::tests::item(1, "default/spo2_low", json, 0, 0);
        item.alert.id = uuid::Uuid::from_u128(opened as u128);
        item.alert.status = status;
        item.alert.opened_at = Timestamp(opened);
        item.alert.respond_by = Timestamp(opened + target_minutes * MINUTE);
        item
    }

    fn page(items: Vec<AlertListItem>) -> Arc<AlertPage> {
        Arc::new(AlertPage {
            total: items.len() as i64,
            items,
        })
    }

    fn count_renders(page: &Arc<AlertPage>, form: Form, at: i64, renders: &mut u32) -> Arc<str> {
        rendered(page, form, Timestamp(at), |groups| {
            *renders += 1;
            serde_json::to_string(groups)
        })
        .unwrap()
    }

    proptest! {
        /// Between `now` and the moment it names, the worklist reads the
        /// same; at that moment it reads differently.
        #[test]
        fn the_worklist_reads_the_same_exactly_until_the_moment_named(
            alerts in proptest::collection::vec(
                (-600 * MINUTE..600 * MINUTE, 1i64..600, any::<bool>()),
                1..12
            ),
            later in 0.0f64..1.0,
        ) {
            let items: Vec<AlertListItem> = alerts
                .into_iter()
                .map(|(offset, target, claimed)| {
                    let status = if claimed { AlertStatus::Claimed } else { AlertStatus::Open };
                    item(NOW + offset, target, status)
                })
                .collect();
            let now = Timestamp(NOW);
            let until = unchanged_until(&items, now);
            prop_assert!(until.micros() > NOW);
            let at_now = group(items.clone(), now, Lang::Nl);
            let between = Timestamp(NOW + ((until.micros() - 1 - NOW) as f64 * later) as i64);
            prop_assert_eq!(&group(items.clone(), between, Lang::Nl), &at_now);
            prop_assert_eq!(&group(items.clone(), Timestamp(until.micros() - 1), Lang::Nl), &at_now);
            prop_assert_ne!(&group(items, until, Lang::Nl), &at_now);
        }
    }

    #[test]
    fn a_page_is_rendered_once_per_form_until_its_minutes_move() {
        // Arrange: raised 30 s before now, 60 minutes to respond.
        let page = page(vec![item(NOW - 30 * 1_000_000, 60, AlertStatus::Open)]);
        let mut renders = 0;

        // Act
        let first = count_renders(&page, Form::Json(Lang::Nl), NOW, &mut renders);
        let again = count_renders(
            &page,
            Form::Json(Lang::Nl),
            NOW + 29 * 1_000_000,
            &mut renders,
        );
        let english = count_renders(&page, Form::Json(Lang::En), NOW, &mut renders);
        let a_minute_waited = count_renders(
            &page,
            Form::Json(Lang::Nl),
            NOW + 30 * 1_000_000,
            &mut renders,
        );

        // Assert
        assert!(Arc::ptr_eq(&first, &again), "served as kept");
        assert_eq!(
            renders, 3,
            "Dutch, English, and Dutch again a minute after raising"
        );
        assert!(first.contains("\"waited_minutes\":0"), "{first}");
        assert!(
            a_minute_waited.contains("\"waited_minutes\":1"),
            "{a_minute_waited}"
        );
        assert!(!Arc::ptr_eq(&english, &first), "each language kept apart");
    }

    #[test]
    fn a_new_page_is_rendered_afresh_even_when_equal() {
        // Arrange: two reads of an unchanged list from a store that keeps
        // no pages (a new `Arc` each time).
        let items = vec![item(NOW, 60, AlertStatus::Open)];
        let (one, other) = (page(items.clone()), page(items));
        let mut renders = 0;

        // Act
        count_renders(&one, Form::Json(Lang::Nl), NOW, &mut renders);
        count_renders(&other, Form::Json(Lang::Nl), NOW, &mut renders);

        // Assert
        assert_eq!(renders, 2);
    }
}
