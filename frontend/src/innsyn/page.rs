//! The citizen page's HTML (maud, the shared layout), in Norwegian bokmål and English.
//!
//! One `h1`, an `h2` per section, tables with captions and column headers, a label for every
//! field; emergency overrides are marked with a word ("Nødrett" / "Emergency override") and
//! the justification, not only a colour. Personnel are named by their identity (their name
//! from `innsyn.personnel_names_file` and HPR number, or the number alone: the audit log
//! carries no names) only once `innsyn.personnel_name_delay_s` has passed since the access; until then the page says when it will show it. (A notification's
//! `summary` names the personnel, so the page does not show it.)

use chrono::{DateTime, Utc};
use kartotek_client::proto as v1;
use maud::{Markup, html};

use super::session::PageError;
use super::view::View;
use super::{ACTION_PATH, INNSYN_PATH, LOGIN_PATH, LOGOUT_PATH, Lang};
use crate::config::InnsynSettings;
use crate::home::layout_in;

/// The text in `lang`.
fn t(lang: Lang, nb: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Nb => nb,
        Lang::En => en,
    }
}

/// What a view page is rendered with.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The language.
    pub lang: Lang,
    /// The CSRF token for the page's forms.
    pub csrf: &'a str,
    /// The logged-in citizen.
    pub me: &'a str,
    /// The represented person viewed (index, national id), none: the citizen's own view.
    pub subject: Option<(usize, &'a str)>,
    /// Also the viewer's own reads and the frontend's checks.
    pub show_all: bool,
    /// The action just done.
    pub done: Option<&'a str>,
    /// `innsyn.personnel_name_delay_s`.
    pub delay_s: u64,
    /// The organisation names.
    pub names: &'a InnsynSettings,
    /// Health personnel's names by HPR number.
    pub personnel: &'a std::collections::HashMap<String, String>,
}

impl Ctx<'_> {
    /// The person the view is about.
    fn person(&self) -> &str {
        self.subject.map_or(self.me, |(_, p)| p)
    }

    /// The view's own path.
    fn path(&self) -> String {
        match self.subject {
            Some((i, _)) => format!("{INNSYN_PATH}/for/{i}"),
            None => INNSYN_PATH.to_owned(),
        }
    }

    /// The `for` field of the view's forms.
    fn for_value(&self) -> String {
        self.subject.map(|(i, _)| i.to_string()).unwrap_or_default()
    }
}

/// A national id as shown: the date part, the rest masked (`DDMMYY *****`).
pub fn masked(id: &str) -> String {
    let date: String = id.chars().take(6).collect();
    format!("{date} *****")
}

/// An RFC 3339 time as shown (UTC).
fn when(lang: Lang, time: &str) -> String {
    match DateTime::parse_from_rfc3339(time) {
        Ok(t) => {
            let t = t.with_timezone(&Utc);
            match lang {
                Lang::Nb => t.format("%d.%m.%Y kl. %H:%M UTC").to_string(),
                Lang::En => t.format("%Y-%m-%d %H:%M UTC").to_string(),
            }
        }
        Err(_) => time.to_owned(),
    }
}

/// An organisation as shown: its configured name and number, or the number.
fn org_text(ctx: &Ctx, org: &str) -> String {
    if org.is_empty() {
        return t(ctx.lang, "Ukjent organisasjon", "Unknown organisation").to_owned();
    }
    match ctx.names.organisation_name(org) {
        Some(name) => format!(
            "{name} ({} {org})",
            t(ctx.lang, "org.nr.", "organisation number")
        ),
        None => format!(
            "{} {org}",
            t(ctx.lang, "Organisasjonsnummer", "Organisation number")
        ),
    }
}

/// The HPR number of a personnel actor (`personnel:<hpr>`, or `hpr:<hpr>`).
fn hpr_of(actor: &str) -> Option<&str> {
    actor
        .strip_prefix("personnel:")
        .or_else(|| actor.strip_prefix("hpr:"))
}

/// Whether personnel who accessed at `time` may be named at `now` after `delay_s`; else the
/// time from which they may.
pub fn name_shown_from(time: &str, delay_s: u64, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
    if delay_s == 0 {
        return Ok(());
    }
    let delay = chrono::Duration::seconds(i64::try_from(delay_s).unwrap_or(i64::MAX / 2));
    let Ok(at) = DateTime::parse_from_rfc3339(time) else {
        // An unreadable time is treated as now: the name waits the whole delay.
        return Err(now + delay);
    };
    let from = at.with_timezone(&Utc) + delay;
    if from <= now { Ok(()) } else { Err(from) }
}

/// Who accessed, as shown to the person: personnel only after the delay.
fn who(ctx: &Ctx, actor: &str, time: &str, now: DateTime<Utc>) -> Markup {
    let l = ctx.lang;
    if let Some(hpr) = hpr_of(actor) {
        return match name_shown_from(time, ctx.delay_s, now) {
            Ok(()) => match ctx.personnel.get(hpr) {
                Some(name) => html! {
                    (name) " (" (t(l, "helsepersonell, HPR-nummer ", "health personnel, HPR number ")) (hpr) ")"
                },
                None => html! {
                    (t(l, "Helsepersonell, HPR-nummer ", "Health personnel, HPR number ")) (hpr)
                },
            },
            Err(from) => html! {
                span class="muted" {
                    (t(l, "Helsepersonell ved organisasjonen – hvem vises fra ", "Health personnel at the organisation – who is shown from "))
                    (when(l, &from.to_rfc3339()))
                }
            },
        };
    }
    if let Some(citizen) = actor.strip_prefix("citizen:") {
        if citizen == ctx.me {
            return html! { (t(l, "Deg selv", "You")) };
        }
        if citizen == ctx.person() {
            return html! { (t(l, "Personen selv", "The person themself")) };
        }
        return html! { (t(l, "En innbygger som representerer personen", "A citizen representing the person")) };
    }
    if let Some(client) = actor.strip_prefix("client:") {
        if client == crate::token::FRONTEND_CLIENT_ID {
            return html! { (t(l, "Kartotek (kontroll ved innlogging)", "Kartotek (check at login)")) };
        }
        return html! { (t(l, "Tjenesten ", "The service ")) code { (client) } };
    }
    html! { "Kartotek " code { (actor) } }
}

/// True for the viewer's own reads and the frontend's checks: hidden unless `show_all`.
fn routine(ctx: &Ctx, e: &v1::AuditEvent) -> bool {
    let me = format!("citizen:{}", ctx.me);
    let frontend = format!("client:{}", crate::token::FRONTEND_CLIENT_ID);
    e.actor == me || e.actor == frontend
}

/// `events` by time, newest first (forwarded events keep the time the service recorded, so
/// chain order is not time order); unreadable times last, in chain order.
fn newest_first(mut events: Vec<&v1::AuditEvent>) -> Vec<&v1::AuditEvent> {
    let key = |e: &v1::AuditEvent| DateTime::parse_from_rfc3339(&e.time).ok();
    events.sort_by(|a, b| key(b).cmp(&key(a)).then(b.seq.cmp(&a.seq)));
    events
}

/// True when the access was an emergency override.
fn override_of(e: &v1::AuditEvent) -> bool {
    e.emergency_override || e.decision == "permit_by_override"
}

fn purpose_text(l: Lang, p: &str) -> String {
    match p {
        "" => t(l, "Ikke oppgitt", "Not given").into(),
        "treatment" => t(l, "Behandling", "Treatment").into(),
        "emergency" => t(l, "Akutt behandling", "Emergency treatment").into(),
        "quality" => t(l, "Kvalitetsforbedring", "Quality improvement").into(),
        "research" => t(l, "Forskning", "Research").into(),
        "payment" => t(l, "Oppgjør", "Payment").into(),
        "administration" => t(l, "Administrasjon", "Administration").into(),
        other => other.into(),
    }
}

fn action_text(l: Lang, a: &str) -> String {
    let text = match a {
        "locator.lookup" | "locator.list" => t(
            l,
            "Så hvor du har helseopplysninger",
            "Looked up where you have health records",
        ),
        "patient.read" => t(l, "Leste helseopplysninger", "Read health records"),
        "patient.query" => t(l, "Søkte i helseopplysninger", "Searched health records"),
        "access.decide" => t(l, "Spurte om tilgang", "Asked for access"),
        "audit.query" => t(
            l,
            "Så hvem som har sett dine data",
            "Viewed who has seen your data",
        ),
        "notification.ack" => t(l, "Kvitterte ut et varsel", "Acknowledged a notification"),
        a if a.ends_with(".write") => t(
            l,
            "Endret personverninnstillinger",
            "Changed privacy settings",
        ),
        a if a.ends_with(".list") || a.ends_with(".read") || a.ends_with(".check") => {
            t(l, "Leste personverninnstillinger", "Read privacy settings")
        }
        other => return other.to_owned(),
    };
    text.to_owned()
}

/// The hidden fields of every form of the view.
fn hidden(ctx: &Ctx, action: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(ctx.csrf);
        input type="hidden" name="for" value=(ctx.for_value());
        input type="hidden" name="action" value=(action);
    }
}

/// A one-button form acting on record `id`.
fn button(ctx: &Ctx, action: &str, id: &str, text: &str, what: &str) -> Markup {
    html! {
        form class="inline" method="post" action=(ACTION_PATH) {
            (hidden(ctx, action))
            input type="hidden" name=(if action.ends_with("reservation") { "service" } else { "id" }) value=(id);
            button type="submit" aria-label=(format!("{text}: {what}")) { (text) }
        }
    }
}

fn section_error(l: Lang, e: &str) -> Markup {
    html! {
        p class="alert" role="alert" {
            (t(l, "Kunne ikke leses nå: ", "Could not be read now: ")) (e)
        }
    }
}

fn accesses(ctx: &Ctx, view: &View, now: DateTime<Utc>) -> Markup {
    let l = ctx.lang;
    html! {
        section aria-labelledby="accesses" {
            h2 id="accesses" { (t(l, "Hvem har sett opplysningene", "Who has seen the records")) }
            @match &view.events {
                Err(e) => { (section_error(l, e)) }
                Ok(events) => {
                    @let hidden_count = events.iter().filter(|e| routine(ctx, e)).count();
                    @let shown = newest_first(events.iter().filter(|e| ctx.show_all || !routine(ctx, e)).collect());
                    @let overrides = shown.iter().filter(|e| override_of(e)).count();
                    p {
                        (t(l, "Alle oppslag i registeret og det helsetjenestene har meldt inn, nyeste først. ",
                              "Every access in the registry and those health services reported, newest first. "))
                        (t(l, "Helsepersonell vises ved navn (HPR-nummer) ", "Health personnel are shown by name (HPR number) "))
                        (delay_text(l, ctx.delay_s))
                        (t(l, " etter oppslaget; før det bare organisasjonen.", " after the access; before that only the organisation."))
                    }
                    @if overrides > 0 {
                        p class="alert" role="status" {
                            strong { (t(l, "Nødrett: ", "Emergency override: ")) }
                            (overrides)
                            (t(l, " oppslag ble gjort med nødrett (opplysninger åpnet uten vanlig tilgang). De er merket under.",
                                  " access(es) used an emergency override (records opened without the usual access). They are marked below."))
                        }
                    }
                    @if shown.is_empty() {
                        p { (t(l, "Ingen oppslag er registrert.", "No accesses are recorded.")) }
                    } @else {
                        table {
                            caption { (t(l, "Oppslag", "Accesses")) " (" (shown.len()) ")" }
                            thead { tr {
                                th scope="col" { (t(l, "Tid", "Time")) }
                                th scope="col" { (t(l, "Organisasjon", "Organisation")) }
                                th scope="col" { (t(l, "Hvem", "Who")) }
                                th scope="col" { (t(l, "Formål", "Purpose")) }
                                th scope="col" { (t(l, "Hva", "What")) }
                            } }
                            tbody {
                                @for e in &shown {
                                    @let ov = override_of(e);
                                    tr class=[ov.then_some("override")] {
                                        td { (when(l, &e.time)) }
                                        td { (org_text(ctx, &e.org)) }
                                        td { (who(ctx, &e.actor, &e.time, now)) }
                                        td { (purpose_text(l, &e.purpose)) }
                                        td {
                                            @if ov {
                                                span class="tag" { (t(l, "Nødrett", "Emergency override")) }
                                                @if !e.justification.is_empty() {
                                                    " – " (t(l, "begrunnelse: ", "justification: ")) (e.justification)
                                                }
                                                br;
                                            }
                                            (action_text(l, &e.action))
                                            @if e.decision == "deny" { " (" (t(l, "avslått", "denied")) ")" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if view.more_events {
                        p { (t(l, "Det finnes flere oppslag enn siden viser (de nyeste vises).",
                               "There are more accesses than the page shows (the latest are shown).")) }
                    }
                    @if !ctx.show_all && hidden_count > 0 {
                        p {
                            (hidden_count)
                            (t(l, " oppslag du selv har gjort her, og Kartoteks kontroller ved innlogging, er skjult. ",
                                  " accesses you made here yourself, and Kartotek's checks at login, are hidden. "))
                            a href=(format!("{}?all=1", ctx.path())) { (t(l, "Vis alle", "Show all")) }
                        }
                    }
                }
            }
        }
    }
}

fn delay_text(l: Lang, delay_s: u64) -> String {
    if delay_s == 0 {
        return t(l, "med en gang", "at once").into();
    }
    let days = delay_s / 86_400;
    if delay_s.is_multiple_of(86_400) {
        return match (l, days) {
            (Lang::Nb, 7) => "én uke".into(),
            (Lang::En, 7) => "one week".into(),
            (Lang::Nb, 1) => "ett døgn".into(),
            (Lang::En, 1) => "one day".into(),
            (Lang::Nb, d) => format!("{d} døgn"),
            (Lang::En, d) => format!("{d} days"),
        };
    }
    match l {
        Lang::Nb => format!("{delay_s} sekunder"),
        Lang::En => format!("{delay_s} seconds"),
    }
}

fn notifications(ctx: &Ctx, view: &View, now: DateTime<Utc>) -> Markup {
    let l = ctx.lang;
    html! {
        section aria-labelledby="notifications" {
            h2 id="notifications" { (t(l, "Varsler om nødrett", "Emergency override notifications")) }
            @match &view.notifications {
                Err(e) => { (section_error(l, e)) }
                Ok(list) if list.is_empty() => {
                    p { (t(l, "Ingen nye varsler.", "No new notifications.")) }
                }
                Ok(list) => {
                    ul class="results" {
                        @for n in list {
                            li class="override" {
                                h3 id=(format!("notification-{}", n.id)) {
                                    span class="tag" { (t(l, "Nødrett", "Emergency override")) } " "
                                    (when(l, &n.access_time))
                                }
                                dl {
                                    dt { (t(l, "Organisasjon", "Organisation")) } dd { (org_text(ctx, &n.org)) }
                                    dt { (t(l, "Hvem", "Who")) }
                                    dd { (who(ctx, &format!("personnel:{}", n.personnel), &n.access_time, now)) }
                                    @if !n.service.is_empty() { dt { (t(l, "Tjeneste", "Service")) } dd { code { (n.service) } } }
                                    dt { (t(l, "Formål", "Purpose")) } dd { (purpose_text(l, &n.purpose)) }
                                    dt { (t(l, "Begrunnelse", "Justification")) } dd { (n.justification) }
                                    @if !n.overridden_block_ids.is_empty() {
                                        dt { (t(l, "Brutte sperringer", "Blocks passed")) } dd { (n.overridden_block_ids.len()) }
                                    }
                                }
                                p { (button(ctx, "ack", &n.id.to_string(), t(l, "Kvitter ut", "Acknowledge"),
                                    &format!("{} {}", t(l, "varselet fra", "the notification of"), when(l, &n.access_time)))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn grantee_text(l: Lang, c: &v1::Consent) -> String {
    let kind = match v1::GranteeKind::try_from(c.grantee_kind) {
        Ok(v1::GranteeKind::Client) => t(l, "Tjenesten", "The service"),
        Ok(v1::GranteeKind::Organisation) => t(l, "Organisasjonen", "The organisation"),
        Ok(v1::GranteeKind::Personnel) => t(l, "Helsepersonell", "Health personnel"),
        _ => "",
    };
    format!("{kind} {}", c.grantee)
}

fn consents(ctx: &Ctx, view: &View) -> Markup {
    let l = ctx.lang;
    html! {
        section aria-labelledby="consents" {
            h2 id="consents" { (t(l, "Samtykker", "Consents")) }
            @match &view.consents {
                Err(e) => { (section_error(l, e)) }
                Ok(list) if list.is_empty() => {
                    p { (t(l, "Ingen samtykker er gitt eller bedt om.", "No consents are granted or requested.")) }
                }
                Ok(list) => {
                    table {
                        caption { (t(l, "Gitte og forespurte samtykker", "Granted and requested consents")) }
                        thead { tr {
                            th scope="col" { (t(l, "Til", "To")) }
                            th scope="col" { (t(l, "Gjelder", "Covers")) }
                            th scope="col" { (t(l, "Formål", "Purpose")) }
                            th scope="col" { (t(l, "Status", "Status")) }
                            th scope="col" { (t(l, "Handling", "Action")) }
                        } }
                        tbody {
                            @for c in list {
                                @let granted = c.status == v1::ConsentStatus::Granted as i32;
                                @let to = grantee_text(l, c);
                                tr id=(format!("consent-{}", c.id)) {
                                    td { (to) }
                                    td { @for (i, s) in c.scopes.iter().enumerate() { @if i > 0 { ", " } code { (s) } } }
                                    td { (purpose_text(l, &c.purpose)) }
                                    td { @if granted { (t(l, "Gitt", "Granted")) } @else { (t(l, "Forespurt", "Requested")) } }
                                    td {
                                        @if granted {
                                            (button(ctx, "withdraw_consent", &c.id.to_string(), t(l, "Trekk tilbake", "Withdraw"), &to))
                                        } @else {
                                            (button(ctx, "deny_consent", &c.id.to_string(), t(l, "Avslå", "Deny"), &to))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn block_target(l: Lang, b: &v1::Block) -> String {
    let kind = match v1::BlockTargetKind::try_from(b.target_kind) {
        Ok(v1::BlockTargetKind::Personnel) => t(
            l,
            "Helsepersonell, HPR-nummer",
            "Health personnel, HPR number",
        ),
        Ok(v1::BlockTargetKind::Group) => t(l, "Gruppen", "The group"),
        Ok(v1::BlockTargetKind::Organisation) => t(l, "Organisasjonsnummer", "Organisation number"),
        _ => "",
    };
    format!("{kind} {}", b.target)
}

fn blocks(ctx: &Ctx, view: &View) -> Markup {
    let l = ctx.lang;
    html! {
        section aria-labelledby="blocks" {
            h2 id="blocks" { (t(l, "Sperringer", "Blocks")) }
            p { (t(l, "En sperring hindrer helsepersonell, en gruppe eller en organisasjon i å se opplysningene. En vanlig sperring kan brytes med nødrett (du får da varsel); en absolutt sperring kan ikke.",
                   "A block keeps health personnel, a group or an organisation from the records. An ordinary block can be passed by an emergency override (you are then notified); an absolute one cannot.")) }
            @match &view.blocks {
                Err(e) => { (section_error(l, e)) }
                Ok(list) if list.is_empty() => { p { (t(l, "Ingen sperringer.", "No blocks.")) } }
                Ok(list) => {
                    ul {
                        @for b in list {
                            @let target = block_target(l, b);
                            li id=(format!("block-{}", b.id)) {
                                (target) " – "
                                @if b.level == v1::BlockLevel::Absolute as i32 { (t(l, "absolutt", "absolute")) } @else { (t(l, "kan brytes med nødrett", "an emergency override may pass it")) }
                                @if !b.reason.is_empty() { " (" (b.reason) ")" }
                                " "
                                (button(ctx, "revoke_block", &b.id.to_string(), t(l, "Opphev", "Revoke"), &target))
                            }
                        }
                    }
                }
            }
            form method="post" action=(ACTION_PATH) aria-labelledby="block-add" {
                h3 id="block-add" { (t(l, "Ny sperring", "New block")) }
                (hidden(ctx, "add_block"))
                div {
                    label for="block-kind" { (t(l, "Hvem", "Whom")) }
                    select id="block-kind" name="target_kind" {
                        option value="personnel" { (t(l, "Helsepersonell (HPR-nummer)", "Health personnel (HPR number)")) }
                        option value="organisation" { (t(l, "Organisasjon (organisasjonsnummer)", "Organisation (organisation number)")) }
                        option value="group" { (t(l, "Gruppe", "Group")) }
                    }
                }
                div {
                    label for="block-target" { (t(l, "Nummer eller gruppe", "Number or group")) }
                    input type="text" id="block-target" name="target" required maxlength="64";
                }
                div {
                    label for="block-level" { (t(l, "Type", "Kind")) }
                    select id="block-level" name="level" {
                        option value="overridable" { (t(l, "Vanlig (kan brytes med nødrett)", "Ordinary (an emergency override may pass)")) }
                        option value="absolute" { (t(l, "Absolutt", "Absolute")) }
                    }
                }
                div {
                    label for="block-reason" { (t(l, "Begrunnelse (valgfri)", "Reason (optional)")) }
                    input type="text" id="block-reason" name="reason" maxlength=(super::REASON_CHARS_MAX);
                }
                div { button type="submit" { (t(l, "Legg til sperring", "Add block")) } }
            }
        }
    }
}

fn reservations(ctx: &Ctx, view: &View) -> Markup {
    let l = ctx.lang;
    html! {
        section aria-labelledby="reservations" {
            h2 id="reservations" { (t(l, "Reservasjoner", "Reservations")) }
            p { (t(l, "En reservasjon betyr at du ikke vil være med i en nasjonal tjeneste.", "A reservation means you opt out of a national service.")) }
            @match &view.reservations {
                Err(e) => { (section_error(l, e)) }
                Ok(list) if list.is_empty() => { p { (t(l, "Ingen reservasjoner.", "No reservations.")) } }
                Ok(list) => {
                    ul {
                        @for r in list {
                            li id=(format!("reservation-{}", r.service)) {
                                code { (r.service) }
                                @if !r.reason.is_empty() { " (" (r.reason) ")" }
                                " "
                                (button(ctx, "withdraw_reservation", &r.service, t(l, "Trekk reservasjonen", "Withdraw the reservation"), &r.service))
                            }
                        }
                    }
                }
            }
            form method="post" action=(ACTION_PATH) aria-labelledby="reserve-add" {
                h3 id="reserve-add" { (t(l, "Ny reservasjon", "New reservation")) }
                (hidden(ctx, "reserve"))
                div {
                    label for="reserve-service" { (t(l, "Tjeneste (f.eks. kjernejournal)", "Service (e.g. kjernejournal)")) }
                    input type="text" id="reserve-service" name="service" required maxlength="64";
                }
                div {
                    label for="reserve-reason" { (t(l, "Begrunnelse (valgfri)", "Reason (optional)")) }
                    input type="text" id="reserve-reason" name="reason" maxlength=(super::REASON_CHARS_MAX);
                }
                div { button type="submit" { (t(l, "Reserver meg", "Opt out")) } }
            }
        }
    }
}

fn kind_text(l: Lang, k: i32) -> &'static str {
    match v1::RepresentationKind::try_from(k) {
        Ok(v1::RepresentationKind::ParentalResponsibility) => {
            t(l, "foreldreansvar", "parental responsibility")
        }
        Ok(v1::RepresentationKind::PowerOfAttorney) => t(l, "fullmakt", "power of attorney"),
        Ok(v1::RepresentationKind::Guardianship) => t(l, "vergemål", "guardianship"),
        Ok(v1::RepresentationKind::NotConsentCompetent) => {
            t(l, "ikke samtykkekompetent", "not competent to consent")
        }
        _ => "",
    }
}

fn represented(ctx: &Ctx, view: &View) -> Markup {
    let l = ctx.lang;
    let Some(section) = &view.represented else {
        return html! {};
    };
    html! {
        section aria-labelledby="represented" {
            h2 id="represented" { (t(l, "Personer du representerer", "People you represent")) }
            @match section {
                Err(e) => { (section_error(l, e)) }
                Ok(list) if list.is_empty() => {
                    p { (t(l, "Du representerer ingen nå.", "You represent nobody now.")) }
                }
                Ok(list) => {
                    p { (t(l, "Registeret avgjør hvem du kan se for, nå (foreldreansvar gjelder f.eks. til barnet fyller 16).",
                           "The registry decides whom you may see for, now (parental responsibility, e.g., ends when the child turns 16).")) }
                    ul {
                        @for (i, r) in list.iter().enumerate() {
                            li {
                                @if super::view::view_area(r).is_some() {
                                    a href=(format!("{INNSYN_PATH}/for/{i}")) {
                                        (t(l, "Innsyn for ", "View for ")) (masked(&r.represented))
                                    }
                                    " (" (kind_text(l, r.kind)) ")"
                                } @else {
                                    (masked(&r.represented)) " (" (kind_text(l, r.kind)) "): "
                                    (t(l, "du representerer personen nå bare for ", "you represent the person now only for "))
                                    (r.effective_areas.join(", "))
                                    (t(l, ", ikke for innsyn i loggen.", ", not for viewing the log."))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn done_text(l: Lang, done: &str) -> Option<&'static str> {
    Some(match done {
        "ack" => t(
            l,
            "Varselet er kvittert ut.",
            "The notification is acknowledged.",
        ),
        "withdraw_consent" => t(
            l,
            "Samtykket er trukket tilbake.",
            "The consent is withdrawn.",
        ),
        "deny_consent" => t(l, "Forespørselen er avslått.", "The request is denied."),
        "revoke_block" => t(l, "Sperringen er opphevet.", "The block is revoked."),
        "add_block" => t(l, "Sperringen er lagt til.", "The block is added."),
        "reserve" => t(
            l,
            "Reservasjonen er registrert.",
            "The reservation is registered.",
        ),
        "withdraw_reservation" => t(
            l,
            "Reservasjonen er trukket.",
            "The reservation is withdrawn.",
        ),
        _ => return None,
    })
}

fn lang_switch(l: Lang, path: &str) -> Markup {
    html! {
        p {
            @match l {
                Lang::Nb => { a href=(format!("{path}?lang=en")) lang="en" hreflang="en" { "English" } }
                Lang::En => { a href=(format!("{path}?lang=nb")) lang="nb" hreflang="nb" { "Norsk" } }
            }
        }
    }
}

/// The view of the citizen's own data, or of a person they represent.
pub fn view_page(ctx: &Ctx, view: &View) -> Markup {
    view_page_at(ctx, view, Utc::now())
}

/// [`view_page`] at `now` (tests).
pub fn view_page_at(ctx: &Ctx, view: &View, now: DateTime<Utc>) -> Markup {
    let l = ctx.lang;
    let title = t(l, "Hvem har sett mine data?", "Who has seen my data?");
    layout_in(
        l.code(),
        title,
        html! {
            (lang_switch(l, &ctx.path()))
            @match ctx.subject {
                None => {
                    h1 { (title) }
                    p { (t(l, "Innlogget som ", "Logged in as ")) (masked(ctx.me)) "." }
                }
                Some((_, person)) => {
                    h1 { (t(l, "Innsyn for ", "View for ")) (masked(person)) }
                    p {
                        (t(l, "Du ser dette fordi du representerer personen nå. ", "You see this because you represent the person now. "))
                        a href=(INNSYN_PATH) { (t(l, "Tilbake til dine egne opplysninger", "Back to your own records")) }
                    }
                }
            }
            @if let Some(text) = ctx.done.and_then(|d| done_text(l, d)) {
                p class="ok" role="status" { (text) }
            }
            nav aria-label=(t(l, "På denne siden", "On this page")) {
                a href="#accesses" { (t(l, "Oppslag", "Accesses")) }
                a href="#notifications" { (t(l, "Varsler", "Notifications")) }
                a href="#consents" { (t(l, "Samtykker", "Consents")) }
                a href="#blocks" { (t(l, "Sperringer", "Blocks")) }
                a href="#reservations" { (t(l, "Reservasjoner", "Reservations")) }
                @if view.represented.is_some() { a href="#represented" { (t(l, "Representerer", "Represented")) } }
            }
            (notifications(ctx, view, now))
            (accesses(ctx, view, now))
            (consents(ctx, view))
            (blocks(ctx, view))
            (reservations(ctx, view))
            (represented(ctx, view))
            form method="post" action=(LOGOUT_PATH) {
                input type="hidden" name="csrf" value=(ctx.csrf);
                button type="submit" style="width:auto" { (t(l, "Logg ut", "Log out")) }
            }
        },
    )
}

fn error_text(l: Lang, e: &PageError) -> String {
    match e {
        PageError::NoLogin => t(l, "Innlogging er ikke satt opp for denne siden.", "No login is set up for this page.").into(),
        PageError::Csrf => t(l, "Skjemaet er utløpt eller kom ikke fra denne siden. Last siden på nytt og prøv igjen.",
                             "The form is out of date or did not come from this page. Load the page again and retry.").into(),
        PageError::SessionExpired => t(l, "Økten er over. Logg inn på nytt.", "The session is over. Log in again.").into(),
        PageError::NoSuchPerson => t(l, "Du representerer ingen slik person nå.", "You represent no such person now.").into(),
        PageError::NotForLog => t(l, "Du representerer personen nå, men ikke for innsyn i loggen (registerets regler).",
                                  "You represent the person now, but not for viewing the log (the registry's rules).").into(),
        PageError::Refused(reason) => format!("{} {reason}", t(l, "Ikke tillatt:", "Not allowed:")),
        PageError::Bad { field, reason } => format!("{} {field}: {reason}", t(l, "Feil i skjemaet:", "Error in the form:")),
        PageError::Login(reason) => format!("{} {reason}", t(l, "Innloggingen mislyktes:", "The login failed:")),
        PageError::ProviderUnavailable(reason) => format!("{} {reason}", t(l, "ID-porten svarer ikke nå; prøv igjen senere.", "ID-porten does not answer now; try again later.")),
        other => format!("{} {}", t(l, "Det gikk ikke:", "It failed:"), other.detail()),
    }
}

/// The page of a failed action or view.
pub fn error_page(l: Lang, e: &PageError) -> Markup {
    let title = t(l, "Det gikk ikke", "That did not work");
    layout_in(
        l.code(),
        title,
        html! {
            h1 { (title) }
            p class="alert" role="alert" { (error_text(l, e)) }
            p { (t(l, "Ingenting ble endret. ", "Nothing was changed. ")) a href=(INNSYN_PATH) { (t(l, "Tilbake til innsyn", "Back to the page")) } }
        },
    )
}

/// Which logins the login page offers.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginWays {
    /// The dev login form (`kartotek dev`).
    pub dev: bool,
    /// The external provider (ID-porten, `innsyn.oidc`).
    pub provider: bool,
}

/// The login page (no session): the provider's login and the dev login form, when they are
/// available.
pub fn login_page(l: Lang, csrf: &str, ways: LoginWays, error: Option<&PageError>) -> Markup {
    let title = t(l, "Hvem har sett mine data?", "Who has seen my data?");
    layout_in(
        l.code(),
        title,
        html! {
            (lang_switch(l, INNSYN_PATH))
            h1 { (title) }
            p { (t(l, "Her ser du hvem som har slått opp opplysninger om deg i Kartotek og hos helsetjenestene som melder inn sine oppslag, varsler om nødrett, og dine sperringer, samtykker og reservasjoner – og det samme for dem du representerer.",
                   "Here you see who has looked up records about you in Kartotek and at the health services that report their accesses, emergency override notifications, and your blocks, consents and reservations – and the same for those you represent.")) }
            @if let Some(e) = error {
                p class="alert" role="alert" { (error_text(l, e)) }
            }
            @if ways.provider {
                section aria-labelledby="idporten-heading" {
                    h2 id="idporten-heading" { (t(l, "Logg inn", "Log in")) }
                    p { a id="idporten-login" class="button" href=(format!("{}?lang={}", super::oidc::START_PATH, l.code())) {
                        (t(l, "Logg inn med ID-porten", "Log in with ID-porten")) } }
                }
            }
            @if ways.dev {
                form method="post" action=(LOGIN_PATH) aria-labelledby="login-heading" {
                    h2 id="login-heading" { (t(l, "Logg inn (utvikling)", "Log in (development)")) }
                    p class="alert" { strong { (t(l, "KUN UTVIKLING: ", "DEV ONLY: ")) }
                        (t(l, "denne innloggingen tar et hvilket som helst syntetisk fødselsnummer uten bevis. I produksjon logger du inn med ID-porten.",
                              "this login takes any synthetic national id without proof. In production you log in with ID-porten.")) }
                    input type="hidden" name="csrf" value=(csrf);
                    div {
                        label for="pid" { (t(l, "Fødselsnummer (11 siffer)", "National id number (11 digits)")) }
                        input type="text" id="pid" name="pid" inputmode="numeric" autocomplete="off"
                            pattern="[0-9]{11}" maxlength="11" required;
                    }
                    div { button type="submit" style="width:auto" { (t(l, "Logg inn", "Log in")) } }
                }
            }
            @if !ways.provider && !ways.dev {
                p { (t(l, "Innlogging er ikke satt opp i denne frontenden (innsyn.oidc).",
                       "No login is set up in this frontend (innsyn.oidc).")) }
            }
        },
    )
}

/// The page after the provider's login: it moves on to `/innsyn` by itself (a same-site
/// navigation, so the new `SameSite=Strict` session cookies go with it), and says so.
pub fn logged_in_page(l: Lang) -> Markup {
    moving_on_page(
        l,
        t(l, "Du er logget inn", "You are logged in"),
        &format!("{INNSYN_PATH}?lang={}", l.code()),
        t(l, "Gå videre til innsyn", "Continue to the page"),
    )
}

/// The page after logout when the provider is to end its session too: on to its
/// end-session endpoint (a page, not a redirect: the CSP's `form-action 'self'` would stop
/// a form's redirect to another site).
pub fn logged_out_page(l: Lang, provider_logout: &str) -> Markup {
    moving_on_page(
        l,
        t(l, "Du er logget ut", "You are logged out"),
        provider_logout,
        t(l, "Logg ut av ID-porten også", "Log out of ID-porten too"),
    )
}

/// A page that navigates to `to` at once (meta refresh), with a link for when it does not.
fn moving_on_page(l: Lang, title: &str, to: &str, link: &str) -> Markup {
    html! {
        (maud::DOCTYPE)
        html lang=(l.code()) {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(format!("0;url={to}"));
                title { (title) }
            }
            body {
                h1 { (title) }
                p { a id="continue" href=(to) { (link) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(actor: &str, time: &str, ov: bool) -> v1::AuditEvent {
        v1::AuditEvent {
            seq: 1,
            time: time.into(),
            actor: actor.into(),
            org: "983974724".into(),
            patient: "15076500565".into(),
            action: "locator.lookup".into(),
            purpose: "treatment".into(),
            emergency_override: ov,
            justification: if ov {
                "bevisstløs".into()
            } else {
                String::new()
            },
            ..Default::default()
        }
    }

    fn render(lang: Lang, events: Vec<v1::AuditEvent>, now: &str, show_all: bool) -> String {
        let names = InnsynSettings {
            organisations: vec![crate::config::OrganisationName {
                org: "983974724".into(),
                name: "Helse Bergen HF".into(),
            }],
            ..InnsynSettings::default()
        };
        let ctx = Ctx {
            lang,
            csrf: "c5rf",
            me: "15076500565",
            subject: None,
            show_all,
            done: Some("ack"),
            delay_s: 7 * 86_400,
            names: &names,
            personnel: &[("1111111".to_owned(), "Kari Lege".to_owned())]
                .into_iter()
                .collect(),
        };
        let view = View {
            events: Ok(events),
            ..View::default()
        };
        let now = DateTime::parse_from_rfc3339(now)
            .unwrap()
            .with_timezone(&Utc);
        view_page_at(&ctx, &view, now).into_string()
    }

    #[test]
    fn personnel_are_named_only_after_the_delay() {
        let events = vec![
            event("personnel:1111111", "2026-11-20T10:00:00Z", false),
            event("personnel:2222222", "2026-12-01T10:00:00Z", false),
        ];
        let html = render(Lang::Nb, events, "2026-12-03T10:00:00Z", false);
        assert!(
            html.contains("Kari Lege (helsepersonell, HPR-nummer 1111111)"),
            "the name from the HPR file: {html}"
        );
        assert!(!html.contains("2222222"), "named before the delay: {html}");
        assert!(
            html.contains("hvem vises fra 08.12.2026 kl. 10:00 UTC"),
            "{html}"
        );
        assert!(
            html.contains("Helse Bergen HF (org.nr. 983974724)"),
            "{html}"
        );
        assert!(html.contains("Varselet er kvittert ut."), "{html}");
        assert!(html.contains("lang=\"nb\""), "{html}");
    }

    #[test]
    fn overrides_are_highlighted_in_words_and_newest_first() {
        let events = vec![
            event("personnel:1111111", "2026-11-20T10:00:00Z", false),
            event("personnel:2222222", "2026-11-21T10:00:00Z", true),
        ];
        let html = render(Lang::En, events, "2026-12-03T10:00:00Z", false);
        assert!(html.contains("<tr class=\"override\">"), "{html}");
        assert!(
            html.contains("Emergency override</span> – justification: bevisstløs"),
            "{html}"
        );
        assert!(html.contains("Emergency override: </strong>1"), "{html}");
        let newer = html.find("2222222").unwrap();
        let older = html.find("1111111").unwrap();
        assert!(newer < older, "newest first");
        assert!(html.contains("lang=\"en\""), "{html}");
    }

    #[test]
    fn own_reads_are_hidden_unless_asked() {
        let events = vec![
            event("citizen:15076500565", "2026-12-01T10:00:00Z", false),
            event("client:kartotek-frontend", "2026-12-01T10:00:00Z", false),
        ];
        let html = render(Lang::Nb, events.clone(), "2026-12-03T10:00:00Z", false);
        assert!(html.contains("Ingen oppslag er registrert."), "{html}");
        assert!(html.contains("2 oppslag du selv"), "{html}");
        let html = render(Lang::Nb, events, "2026-12-03T10:00:00Z", true);
        assert!(html.contains("Deg selv"), "{html}");
        assert!(
            html.contains("Kartotek (kontroll ved innlogging)"),
            "{html}"
        );
    }

    #[test]
    fn only_representations_that_give_the_log_are_links() {
        let rep = |id: &str, areas: &[&str]| v1::Representation {
            represented: id.into(),
            kind: v1::RepresentationKind::ParentalResponsibility as i32,
            effective_areas: areas.iter().map(|a| (*a).to_owned()).collect(),
            ..Default::default()
        };
        let names = InnsynSettings::default();
        let ctx = Ctx {
            lang: Lang::Nb,
            csrf: "c",
            me: "15076500565",
            subject: None,
            show_all: false,
            done: None,
            delay_s: 0,
            names: &names,
            personnel: &Default::default(),
        };
        let view = View {
            represented: Some(Ok(vec![
                rep("14031650055", &["*"]),
                rep("14031350000", &["appointments", "vaccinations"]),
                rep("14031450000", &["audit"]),
            ])),
            ..View::default()
        };
        let html = represented(&ctx, &view).into_string();
        assert!(html.contains("href=\"/innsyn/for/0\""), "{html}");
        assert!(!html.contains("href=\"/innsyn/for/1\""), "{html}");
        assert!(html.contains("140313 ***** (foreldreansvar): du representerer personen nå bare for appointments, vaccinations"), "{html}");
        assert!(html.contains("href=\"/innsyn/for/2\""), "{html}");
    }

    #[test]
    fn the_delay_rule() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(name_shown_from("2026-11-26T10:00:00Z", 7 * 86_400, now).is_ok());
        assert!(name_shown_from("2026-11-26T10:00:01Z", 7 * 86_400, now).is_err());
        assert!(name_shown_from("2026-12-03T10:00:00Z", 0, now).is_ok());
        assert!(name_shown_from("garbage", 0, now).is_ok());
        assert!(name_shown_from("garbage", 60, now).is_err());
        assert_eq!(masked("15076500565"), "150765 *****");
    }
}
