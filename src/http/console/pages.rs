//! The console's pages (maud: compiled templates, every interpolation HTML-escaped). Accessible
//! by construction: one `h1` per page, landmarks, a skip link, labelled fields, tables with
//! captions and header scopes, states written as words (never colour alone), and charts with a
//! text equivalent.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use maud::{html, Markup, DOCTYPE};

use crate::model::access::{CollectionInfo, Rights};
use crate::model::audit::AuditRecord;
use crate::model::plan::{Plan, State};
use crate::model::time::{format_taxii, Micros};
use crate::service::audit::{Delivery, Exported};
use crate::service::console::{
    Activity, CellDetail, Matrix, ObjectRow, Overview, PartnerCredentials, Session, SEARCH_LIMIT,
};
use crate::storage::credentials::CredentialInfo;

const NAV: &[(&str, &str)] = &[
    ("/console/", "Overview"),
    ("/console/access", "Access"),
    ("/console/policy", "Policy"),
    ("/console/credentials", "Credentials"),
    ("/console/audit", "Audit"),
];

/// `htmx` settings: no inline styles or eval (the CSP forbids them), requests to this origin only.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true,"historyCacheSize":0}"#;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn time(t: Micros) -> String {
    format_taxii(t)
}

fn opt_time(t: Option<Micros>) -> String {
    t.map_or_else(|| "never".to_owned(), format_taxii)
}

fn rights_word(r: Rights) -> &'static str {
    match (r.read, r.write) {
        (true, true) => "read+write",
        (true, false) => "read",
        (false, true) => "write",
        (false, false) => "none",
    }
}

/// A matrix cell: the rights, and for a derived collection whose sources the partner may not
/// read, that the grant serves nothing.
fn cell_word(m: &Matrix, partner: &str, collection: &str) -> String {
    let word = rights_word(m.rights(partner, collection));
    if m.rights(partner, collection).read && !m.reads(partner, collection) {
        format!("{word} (no readable source)")
    } else {
        word.to_owned()
    }
}

fn layout(title: &str, current: &str, s: Option<&Session>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · Concordia console" }
                link rel="stylesheet" href="/console/assets/console.css";
                link rel="icon" type="image/svg+xml" href="/console/assets/favicon.svg";
                script src="/console/assets/htmx-2.0.11.min.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    p.brand { "Concordia " span { "operator console" } }
                    @if let Some(s) = s {
                        nav aria-label="Console" {
                            ul {
                                @for (href, label) in NAV {
                                    li {
                                        @if *label == current {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        form.signout method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span { "Signed in as " strong { (s.name) } }
                            " "
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" { (main) }
            }
        }
    }
}

pub fn login(error: Option<&str>, certificate: bool) -> Markup {
    layout(
        "Sign in",
        "",
        None,
        html! {
            h1 { "Sign in" }
            p { "The console is for the hub's operators. Partner credentials do not open it." }
            @if let Some(e) = error {
                p.alert role="alert" { (e) }
            }
            form.login method="post" action="/console/login" {
                p {
                    label for="name" { "Operator name" }
                    input #name type="text" name="name" autocomplete="username" required autofocus
                        autocapitalize="none" spellcheck="false" maxlength="64";
                }
                p {
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required
                        maxlength="1024";
                }
                p { button type="submit" { "Sign in" } }
            }
            @if certificate {
                form method="post" action="/console/login/certificate" {
                    p { button type="submit" { "Sign in with this connection's client certificate" } }
                }
            }
        },
    )
}

pub fn error(s: Option<&Session>, status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    layout(
        title,
        "",
        s,
        html! {
            h1 { (title) }
            p.alert role="alert" { (message) }
            p { a href="/console/" { "Back to the overview" } }
        },
    )
}

/// A horizontal bar chart of objects served per partner over the last day (SVG, with its
/// numbers written beside the bars and in the table above it).
fn served_chart(activity: &[(&String, &Activity)]) -> Markup {
    let max = activity.iter().map(|(_, a)| a.served_day).max().unwrap_or(0).max(1);
    let row = 26i64;
    let height = row * i64::try_from(activity.len()).unwrap_or(0) + 10;
    html! {
        figure {
            svg.chart role="img" aria-labelledby="served-chart-title" width="640" height=(height)
                viewBox={"0 0 640 " (height)} xmlns="http://www.w3.org/2000/svg" {
                title #served-chart-title { "Objects served per partner in the last 24 hours" }
                @for (i, (name, a)) in activity.iter().enumerate() {
                    @let y = i64::try_from(i).unwrap_or(0) * row + 5;
                    @let w = a.served_day * 380 / max;
                    text x="0" y=(y + 16) { (name) }
                    rect x="160" y=(y + 3) width=(w.max(1)) height="16" {}
                    text x=(170 + w) y=(y + 16) { (a.served_day) }
                }
            }
            figcaption { "Objects served per partner in the last 24 hours (the table above has the same numbers)." }
        }
    }
}

pub fn overview(s: &Session, o: &Overview) -> Markup {
    let active: Vec<(&String, &Activity)> = o.activity.iter().collect();
    layout(
        "Overview",
        "Overview",
        Some(s),
        html! {
            h1 { "Overview" }
            p.meta { "As of " (time(o.computed_at)) " (UTC; refreshed at most every 30 seconds)." }
            section aria-labelledby="h-collections" {
                h2 #h-collections { "Collections" }
                table {
                    caption { "Objects per collection" }
                    thead { tr { th scope="col" { "Collection" } th scope="col" { "API root" } th scope="col" { "Kind" } th scope="col" class="num" { "Objects" } } }
                    tbody {
                        @for c in &o.collections {
                            tr {
                                th scope="row" { a href={"/console/collections/" (c.id)} { (c.title) } }
                                td { (c.api_root) }
                                td { @if c.derived { "derived (feed)" } @else { "stored" } }
                                td.num { (c.objects) }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="h-activity" {
                h2 #h-activity { "Activity per partner" }
                @if !o.audit_enabled {
                    p.alert role="note" { "The audit trail is off (audit = false): no activity is known." }
                }
                @if o.partial {
                    p.alert role="note" { "Partial: the scan stopped after " (o.records_scanned) " audit records." }
                }
                table {
                    caption { "Requests and objects over the last hour and day, from the audit trail" }
                    thead {
                        tr {
                            th scope="col" { "Partner" }
                            th scope="col" class="num" { "Reads, 1 h" }
                            th scope="col" class="num" { "Reads, 24 h" }
                            th scope="col" class="num" { "Objects served, 1 h" }
                            th scope="col" class="num" { "Objects served, 24 h" }
                            th scope="col" class="num" { "Writes, 24 h" }
                            th scope="col" class="num" { "Objects stored, 1 h" }
                            th scope="col" class="num" { "Objects stored, 24 h" }
                            th scope="col" { "Last successful poll" }
                        }
                    }
                    tbody {
                        @for (name, a) in &active {
                            tr {
                                th scope="row" { (name) }
                                td.num { (a.reads_hour) }
                                td.num { (a.reads_day) }
                                td.num { (a.served_hour) }
                                td.num { (a.served_day) }
                                td.num { (a.writes_day) }
                                td.num { (a.stored_hour) }
                                td.num { (a.stored_day) }
                                td { (a.last_poll.map_or_else(|| "none in this window".to_owned(), time)) }
                            }
                        }
                    }
                }
                @if !active.is_empty() { (served_chart(&active)) }
            }
            section aria-labelledby="h-quiet" {
                h2 #h-quiet { "Quiet partners" }
                p { "Partners that may read a collection but have not polled successfully in the last " (o.quiet_hours) " hours." }
                @if o.quiet.is_empty() {
                    p { "None." }
                } @else {
                    ul aria-label="Quiet partners" {
                        @for (name, last) in &o.quiet {
                            li { strong { (name) } ": last successful poll " (last.map_or_else(|| "not in the window".to_owned(), time)) }
                        }
                    }
                }
            }
            section aria-labelledby="h-expiring" {
                h2 #h-expiring { "Expiring within 30 days" }
                @if o.expiring_credentials.is_empty() && o.expiring_certificates.is_empty() {
                    p { "No credential or certificate expires within 30 days." }
                }
                @if !o.expiring_credentials.is_empty() {
                    table {
                        caption { "Credentials" }
                        thead { tr { th scope="col" { "Partner" } th scope="col" { "Credential" } th scope="col" { "Kind" } th scope="col" { "Label" } th scope="col" { "Expires" } } }
                        tbody {
                            @for c in &o.expiring_credentials {
                                tr {
                                    th scope="row" { (c.partner) }
                                    td { code { (c.id) } }
                                    td { (c.kind) }
                                    td { (c.label.clone().unwrap_or_default()) }
                                    td { (opt_time(c.expires_at)) }
                                }
                            }
                        }
                    }
                }
                @if !o.expiring_certificates.is_empty() {
                    table {
                        caption { "Client certificates in use" }
                        thead { tr { th scope="col" { "Partner" } th scope="col" { "Subject" } th scope="col" { "Fingerprint" } th scope="col" { "Not after" } th scope="col" { "Last used" } } }
                        tbody {
                            @for c in &o.expiring_certificates {
                                tr {
                                    th scope="row" { (c.partner) }
                                    td { (c.subject) }
                                    td { code { (c.fingerprint) } }
                                    td { (time(c.not_after)) }
                                    td { (time(c.last_seen)) }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="h-live" {
                h2 #h-live { "Live traffic" }
                p { "The newest partner requests and failed logins on every node, refreshed every 5 seconds." }
                div #live hx-get="/console/live" hx-trigger="load, every 5s" aria-live="off" {
                    p { a href="/console/live" { "Show the newest requests" } }
                }
            }
        },
    )
}

fn title_of<'a>(titles: &'a HashMap<String, String>, id: &'a str) -> &'a str {
    titles.get(id).map_or(id, String::as_str)
}

pub fn live(records: &[AuditRecord], titles: &HashMap<String, String>) -> Markup {
    html! {
        @if records.is_empty() {
            p { "No requests recorded yet." }
        } @else {
            table {
                caption { "Newest requests" }
                thead { tr { th scope="col" { "Time (UTC)" } th scope="col" { "Partner" } th scope="col" { "Action" } th scope="col" { "Collection" } th scope="col" { "Status" } th scope="col" class="num" { "Objects" } } }
                tbody {
                    @for r in records {
                        tr {
                            td { (time(r.at)) }
                            td { (r.partner.clone().or_else(|| r.credential_id.clone()).unwrap_or_else(|| "anonymous".into())) }
                            td { (r.action) @if r.kind == "auth_failure" { " (failed login)" } }
                            td { (r.collection_id.as_deref().map(|c| title_of(titles, c)).unwrap_or_default()) }
                            td { (r.status.map(|s| s.to_string()).unwrap_or_default()) }
                            td.num { (r.object_count.map(|n| n.to_string()).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

pub fn access(s: &Session, m: &Matrix, only: Option<&str>) -> Markup {
    let cols: Vec<&(String, String, String, bool)> =
        m.collections.iter().filter(|(id, ..)| only.is_none_or(|o| o == id)).collect();
    layout(
        "Access matrix",
        "Access",
        Some(s),
        html! {
            h1 { "Access matrix" }
            p { "Each partner's rights on each collection, as every TAXII request is checked against them (the union of its groups' grants; a derived collection never gives more than its sources). Choose a cell for the groups that grant it." }
            @if let Some((id, title, ..)) = cols.first().filter(|_| only.is_some()) {
                h2 { "Partners who can read " (title) }
                @let readers: Vec<&String> = m.partners.iter().filter(|p| m.reads(p, id)).collect();
                @if readers.is_empty() {
                    p { "No partner can read it." }
                } @else {
                    ul aria-label="Partners who can read" {
                        @for p in readers { li { (p) " (" (cell_word(m, p, id)) ")" } }
                    }
                }
                p { a href="/console/access" { "Show every collection" } }
            }
            div.scroll {
                table.matrix {
                    caption { "Partners (rows) × collections (columns)" }
                    thead {
                        tr {
                            th scope="col" { "Partner" }
                            @for (id, title, root, derived) in &cols {
                                th scope="col" {
                                    a href={"/console/access?collection=" (enc(id))} { (title) }
                                    br;
                                    small { (root) @if *derived { ", derived" } }
                                }
                            }
                        }
                    }
                    tbody {
                        @for p in &m.partners {
                            tr {
                                th scope="row" { (p) }
                                @for (id, title, ..) in &cols {
                                    @let r = cell_word(m, p, id);
                                    td class={"r-" (r.split(' ').next().unwrap_or_default().replace('+', "-"))} {
                                        a href={"/console/access/cell?partner=" (enc(p)) "&collection=" (enc(id))}
                                            hx-get={"/console/access/cell?partner=" (enc(p)) "&collection=" (enc(id))}
                                            hx-target="#cell-detail" hx-swap="innerHTML"
                                            aria-label={(p) " on " (title) ": " (r)} { (r) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            div #cell-detail aria-live="polite" {}
        },
    )
}

pub fn cell(d: &CellDetail) -> Markup {
    html! {
        section.cell {
            h2 { "Groups granting " (d.partner) " access to " (d.collection_title) }
            p { "Rights: " strong { (rights_word(d.rights)) } }
            @if d.groups.is_empty() {
                p { "None of " (d.partner) "'s groups has a grant on this collection." }
            } @else {
                ul aria-label="Granting groups" {
                    @for (g, r, w) in &d.groups {
                        li { (g) ": " (rights_word(Rights { read: *r, write: *w })) }
                    }
                }
            }
            @if d.public_read { p { "The collection is also public (anonymous read, when the server allows it)." } }
            @if !d.sources.is_empty() {
                p { "Derived from " (d.sources.join(", ")) ": the partner sees only objects it may also read in one of them, within the sources' TLP ceilings." }
            }
        }
    }
}

pub fn cell_page(s: &Session, fragment: Markup) -> Markup {
    layout(
        "Access",
        "Access",
        Some(s),
        html! {
            h1 { "Access" }
            (fragment)
            p { a href="/console/access" { "Back to the access matrix" } }
        },
    )
}

pub fn policy(s: &Session, state: &State, result: Option<&Result<Plan, String>>, text: &str) -> Markup {
    layout(
        "Policy",
        "Policy",
        Some(s),
        html! {
            h1 { "Policy" }
            section aria-labelledby="h-preview" {
                h2 #h-preview { "Preview a policy change" }
                p { "Paste or upload a policy file (TOML, as for " code { "concordia apply" } "). The console shows the plan " code { "apply --dry-run" } " would show; nothing is changed. Apply with " code { "concordia apply FILE" } "." }
                form method="post" action="/console/policy/preview" enctype="multipart/form-data" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    p {
                        label for="policy-text" { "Policy (TOML)" }
                        textarea #policy-text name="policy" rows="14" spellcheck="false" { (text) }
                    }
                    p {
                        label for="policy-file" { "Or upload a policy file" }
                        input #policy-file type="file" name="file" accept=".toml,text/plain,application/toml";
                    }
                    p.check {
                        input #prune type="checkbox" name="prune" value="1";
                        " "
                        label for="prune" { "Also remove what the file leaves out (" code { "--prune" } ")" }
                    }
                    p { button type="submit" { "Preview plan" } }
                }
                @match result {
                    Some(Ok(plan)) => {
                        section.plan aria-labelledby="h-plan" {
                            h2 #h-plan { "Plan" }
                            @if plan.changes.is_empty() {
                                p { "No changes: the database already matches this policy." }
                            } @else {
                                p { (plan.changes.len()) " change(s) would be applied:" }
                                ul.changes aria-label="Changes" {
                                    @for c in &plan.changes { li { code { (c.to_string()) } } }
                                }
                            }
                            @if !plan.kept.is_empty() {
                                ul aria-label="Kept" { @for k in &plan.kept { li { code { "= " (k) } } } }
                            }
                        }
                    }
                    Some(Err(problems)) => {
                        div.alert role="alert" {
                            p { "The policy cannot be applied:" }
                            pre { (problems) }
                        }
                    }
                    None => {}
                }
            }
            section aria-labelledby="h-current" {
                h2 #h-current { "Current policy" }
                table {
                    caption { "API roots" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Title" } th scope="col" class="num" { "Max content length" } } }
                    tbody { @for r in &state.api_roots { tr { th scope="row" { (r.name) } td { (r.title) } td.num { (r.max_content_length) } } } }
                }
                table {
                    caption { "Partners" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Title" } th scope="col" { "Certificate identities" } th scope="col" { "Limits" } } }
                    tbody {
                        @for p in &state.partners {
                            tr {
                                th scope="row" { (p.name) }
                                td { (p.title.clone().unwrap_or_default()) }
                                td { @for (k, v) in &p.certificates { code { (k) ": " (v) } br; } }
                                td { (p.limits.as_ref().map(|l| serde_json::to_string(l).unwrap_or_default()).unwrap_or_else(|| "defaults".into())) }
                            }
                        }
                    }
                }
                table {
                    caption { "Groups" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Members" } } }
                    tbody {
                        @for g in &state.groups {
                            tr { th scope="row" { (g.name) } td { (g.members.iter().cloned().collect::<Vec<_>>().join(", ")) } }
                        }
                    }
                }
                table {
                    caption { "Collections" }
                    thead { tr { th scope="col" { "Title" } th scope="col" { "Id" } th scope="col" { "API root" } th scope="col" { "Grants" } th scope="col" { "Settings" } th scope="col" class="num" { "Objects" } } }
                    tbody {
                        @for c in &state.collections {
                            tr {
                                th scope="row" { (c.title) }
                                td { code { (c.id) } }
                                td { (c.api_root) }
                                td { @for (g, (r, w)) in &c.grants { (g) ": " (rights_word(Rights { read: *r, write: *w })) br; } }
                                td {
                                    @if c.public { "public; " }
                                    @if let Some(f) = &c.feed { (serde_json::to_string(f).unwrap_or_default()) " " }
                                    @if let Some(p) = &c.sharing { (serde_json::to_string(p).unwrap_or_default()) }
                                }
                                td.num { (c.objects) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn state_word(c: &CredentialInfo, now: Micros) -> &'static str {
    if c.revoked_at.is_some() {
        "revoked"
    } else if c.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

pub fn credentials(s: &Session, list: &[PartnerCredentials], notice: Option<&str>, now: Micros) -> Markup {
    layout(
        "Credentials",
        "Credentials",
        Some(s),
        html! {
            h1 { "Credentials" }
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            section aria-labelledby="h-new-key" {
                h2 #h-new-key { "Create API key" }
                form.inline method="post" action="/console/credentials/api-key" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    p {
                        label for="key-partner" { "Partner" }
                        select #key-partner name="partner" required {
                            @for p in list { option value=(p.partner) { (p.partner) } }
                        }
                    }
                    p { label for="key-label" { "Label" } input #key-label type="text" name="label" maxlength="200"; }
                    p { label for="key-expires" { "Expires (UTC, optional)" } input #key-expires type="datetime-local" name="expires"; }
                    p { button type="submit" { "Create API key" } }
                }
            }
            @for p in list {
                table {
                    caption { (p.partner) }
                    thead { tr { th scope="col" { "Credential" } th scope="col" { "Kind" } th scope="col" { "Label" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "State" } th scope="col" { "Actions" } } }
                    tbody {
                        @if p.credentials.is_empty() && p.certificates.is_empty() {
                            tr { td colspan="7" { "No credentials." } }
                        }
                        @for c in &p.credentials {
                            @let st = state_word(c, now);
                            tr {
                                th scope="row" { code { (c.id) } }
                                td { (c.kind) }
                                td { (c.label.clone().unwrap_or_default()) }
                                td { (time(c.created_at)) }
                                td { (opt_time(c.expires_at)) }
                                td { span class={"state s-" (st)} { (st) } }
                                td {
                                    @if st == "active" {
                                        a href={"/console/credentials/" (enc(&c.id)) "/revoke"} aria-label={"Revoke credential " (c.id) " of " (p.partner)} { "Revoke" }
                                        " · "
                                        a href={"/console/credentials/" (enc(&c.id)) "/expire"} aria-label={"Expire credential " (c.id) " of " (p.partner)} { "Expire" }
                                    }
                                }
                            }
                        }
                        @for (kind, pattern) in &p.certificates {
                            tr {
                                th scope="row" { code { (pattern) } }
                                td { "certificate (" (kind) ")" }
                                td { "from the policy" }
                                td {} td { "the certificate's own" }
                                td { span.state { "active" } }
                                td { "change in the policy" }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn credential_facts(c: &CredentialInfo) -> Markup {
    html! {
        dl {
            dt { "Partner" } dd { (c.partner) }
            dt { "Credential" } dd { code { (c.id) } }
            dt { "Kind" } dd { (c.kind) }
            dt { "Label" } dd { (c.label.clone().unwrap_or_else(|| "none".into())) }
            dt { "Expires" } dd { (opt_time(c.expires_at)) }
        }
    }
}

pub fn confirm_revoke(s: &Session, c: &CredentialInfo) -> Markup {
    layout(
        "Revoke credential",
        "Credentials",
        Some(s),
        html! {
            h1 { "Revoke credential" }
            (credential_facts(c))
            p.alert role="note" { "Revoking is immediate and cannot be undone: the partner's next TAXII request with this credential is refused (401) on every node." }
            form method="post" action={"/console/credentials/" (enc(&c.id)) "/revoke"} {
                input type="hidden" name="csrf" value=(s.csrf);
                button.danger type="submit" { "Revoke credential" }
                " "
                a href="/console/credentials" { "Cancel" }
            }
        },
    )
}

pub fn confirm_expire(s: &Session, c: &CredentialInfo, error: Option<&str>) -> Markup {
    layout(
        "Expire credential",
        "Credentials",
        Some(s),
        html! {
            h1 { "Expire credential" }
            (credential_facts(c))
            @if let Some(e) = error { p.alert role="alert" { (e) } }
            form method="post" action={"/console/credentials/" (enc(&c.id)) "/expire"} {
                input type="hidden" name="csrf" value=(s.csrf);
                p {
                    label for="expire-at" { "Expires at (UTC; empty: now)" }
                    input #expire-at type="datetime-local" name="at";
                }
                button.danger type="submit" { "Set expiry" }
                " "
                a href="/console/credentials" { "Cancel" }
            }
        },
    )
}

pub fn new_key(s: &Session, partner: &str, id: &str, key: &str) -> Markup {
    layout(
        "API key created",
        "Credentials",
        Some(s),
        html! {
            h1 { "API key created" }
            p { "A new API key for " strong { (partner) } " (credential " code { (id) } "). It is shown only this once: copy it now and hand it to the partner over a secure channel." }
            p { label for="new-api-key" { "API key" } }
            p { output #new-api-key { code { (key) } } }
            p { "Partners present it as " code { "Authorization: Bearer <key>" } ", or as the password of HTTP Basic." }
            p { a href="/console/credentials" { "Back to credentials" } }
        },
    )
}

const ACTIONS: &[&str] = &[
    "get_objects",
    "get_object",
    "get_object_versions",
    "get_manifest",
    "add_objects",
    "delete_object",
    "get_collections",
    "get_collection",
    "get_status",
    "console_login",
    "console_logout",
    "credential_add",
    "credential_revoke",
    "credential_expire",
    "apply",
    "retention_purge",
    "feed_withdraw",
    "get_objects_taxii20",
    "get_object_taxii20",
    "get_manifest_taxii20",
    "console_view",
    "console_refused_post",
    "console_policy_preview",
    "console_audit_search",
    "console_audit_export",
    "console_recipients",
    "console_collection_view",
    "console_object_view",
    "operator_add",
    "operator_remove",
];

pub fn audit(
    s: &Session,
    m: &Matrix,
    q: &HashMap<String, String>,
    found: Option<&(Vec<Exported>, usize)>,
    error: Option<&str>,
) -> Markup {
    let v = |k: &str| q.get(k).cloned().unwrap_or_default();
    let titles: HashMap<&str, &str> = m.collections.iter().map(|(id, t, ..)| (id.as_str(), t.as_str())).collect();
    let export_query: String = ["partner", "collection", "action", "since", "until"]
        .iter()
        .filter_map(|k| q.get(*k).filter(|x| !x.is_empty()).map(|x| format!("&{k}={}", enc(x))))
        .collect();
    layout(
        "Audit trail",
        "Audit",
        Some(s),
        html! {
            h1 { "Audit trail" }
            section aria-labelledby="h-recipients" {
                h2 #h-recipients { "Who received an object" }
                form.inline method="get" action="/console/audit/recipients" {
                    p {
                        label for="object-id" { "Object id" }
                        input #object-id type="text" name="object_id" required size="60" spellcheck="false"
                            placeholder="indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";
                    }
                    p { button type="submit" { "Find recipients" } }
                }
            }
            section aria-labelledby="h-search" {
                h2 #h-search { "Search" }
                form.inline method="get" action="/console/audit" {
                    p {
                        label for="f-partner" { "Partner" }
                        select #f-partner name="partner" {
                            option value="" { "any" }
                            @for p in &m.partners { option value=(p) selected[v("partner") == *p] { (p) } }
                        }
                    }
                    p {
                        label for="f-collection" { "Collection" }
                        select #f-collection name="collection" {
                            option value="" { "any" }
                            @for (id, title, ..) in &m.collections { option value=(id) selected[v("collection") == *id] { (title) } }
                        }
                    }
                    p {
                        label for="f-action" { "Action" }
                        input #f-action type="text" name="action" list="actions" value=(v("action"));
                        datalist #actions { @for a in ACTIONS { option value=(a) {} } }
                    }
                    p { label for="f-since" { "Since (UTC)" } input #f-since type="datetime-local" step="1" name="since" value=(v("since")); }
                    p { label for="f-until" { "Until (UTC)" } input #f-until type="datetime-local" step="1" name="until" value=(v("until")); }
                    p { button type="submit" { "Filter" } }
                }
                p {
                    "Export what the filter selects (the whole trail without one): "
                    a href={"/console/audit/export?format=jsonl" (export_query)} download { "Export JSONL" }
                    " · "
                    a href={"/console/audit/export?format=csv" (export_query)} download { "Export CSV" }
                }
                @if let Some(e) = error { p.alert role="alert" { (e) } }
                @if let Some((records, total)) = found {
                    p role="status" {
                        (total) " record(s) match"
                        @if v("since").is_empty() && v("until").is_empty() { " in the last 24 hours" }
                        @if *total > SEARCH_LIMIT { "; the newest " (SEARCH_LIMIT) " are shown" }
                        "."
                    }
                    div.scroll {
                        table {
                            caption { "Matching records, newest first" }
                            thead { tr { th scope="col" { "Time (UTC)" } th scope="col" { "Kind" } th scope="col" { "Who" } th scope="col" { "Credential" } th scope="col" { "Action" } th scope="col" { "Collection" } th scope="col" { "Object" } th scope="col" { "Status" } th scope="col" class="num" { "Objects" } th scope="col" { "Detail" } } }
                            tbody {
                                @for e in records {
                                    @let r = &e.record;
                                    tr {
                                        td { (e.time) }
                                        td { (r.kind) }
                                        td { (r.partner.clone().unwrap_or_default()) }
                                        td { (r.credential_method.clone().unwrap_or_default()) " " code { (r.credential_id.clone().unwrap_or_default()) } }
                                        td { (r.action) }
                                        td { (r.collection_id.as_deref().map(|c| titles.get(c).copied().unwrap_or(c)).unwrap_or_default()) }
                                        td { code { (r.object_id.clone().unwrap_or_default()) } }
                                        td { (r.status.map(|s| s.to_string()).unwrap_or_default()) }
                                        td.num { (r.object_count.map(|n| n.to_string()).unwrap_or_default()) }
                                        td.detail { (r.detail.clone().unwrap_or_default()) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn recipients(s: &Session, id: &str, list: &[Delivery], titles: &HashMap<String, String>) -> Markup {
    layout(
        "Recipients",
        "Audit",
        Some(s),
        html! {
            h1 { "Recipients" }
            h2 { "Recipients of " (id) }
            @if list.is_empty() {
                p role="status" { "No partner has been served this object (as far as the audit trail reaches)." }
            } @else {
                p role="status" { (list.len()) @if list.len() == 1 { " delivery." } @else { " deliveries." } }
                table {
                    caption { "Every delivery of the object to a partner" }
                    thead { tr { th scope="col" { "Partner" } th scope="col" { "Served at (UTC)" } th scope="col" { "Collection" } th scope="col" { "Version" } th scope="col" { "Credential" } th scope="col" { "Client" } th scope="col" { "Request" } } }
                    tbody {
                        @for d in list {
                            tr {
                                th scope="row" { (d.partner) }
                                td { (d.served_at) }
                                td { (title_of(titles, &d.collection_id)) }
                                td { (d.version) }
                                td { (d.credential_method) " " code { (d.credential_id) } }
                                td { (d.client.clone().unwrap_or_default()) }
                                td { code { (d.request_id.clone().unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
            p { a href="/console/audit" { "Back to the audit trail" } }
        },
    )
}

pub fn collection(s: &Session, col: &CollectionInfo, rows: &[ObjectRow], m: &Matrix) -> Markup {
    let readers: Vec<&String> = m.partners.iter().filter(|p| m.reads(p, &col.id)).collect();
    layout(
        &col.title,
        "Overview",
        Some(s),
        html! {
            h1 { (col.title) }
            dl {
                dt { "Id" } dd { code { (col.id) } }
                @if let Some(d) = &col.description { dt { "Description" } dd { (d) } }
                @if col.feed.is_derived() { dt { "Derived from" } dd { (col.feed.derived_from.join(", ")) } }
                @if col.public_read { dt { "Public" } dd { "yes" } }
            }
            h2 { "Who can read it" }
            @if readers.is_empty() { p { "No partner." } } @else {
                ul aria-label="Partners who can read" { @for p in &readers { li { (p) " (" (rights_word(m.rights(p, &col.id))) ")" } } }
            }
            h2 { "Latest objects" }
            @if rows.is_empty() { p { "The collection holds no objects." } } @else {
                div.scroll {
                    table {
                        caption { "The " (rows.len()) " objects added last (latest versions), newest first" }
                        thead { tr { th scope="col" { "Type" } th scope="col" { "Id" } th scope="col" { "Modified" } th scope="col" { "Added" } th scope="col" { "Markings" } } }
                        tbody {
                            @for r in rows {
                                tr {
                                    td { (r.stix_type) }
                                    th scope="row" { a href={"/console/collections/" (enc(&col.id)) "/objects/" (enc(&r.id))} { code { (r.id) } } }
                                    td { (r.modified) }
                                    td { (time(r.date_added)) }
                                    td { (if r.markings.is_empty() { "none".to_owned() } else { r.markings.join(", ") }) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn object(s: &Session, col: &CollectionInfo, id: &str, versions: &[(String, Micros, String)]) -> Markup {
    layout(
        id,
        "Overview",
        Some(s),
        html! {
            h1 { code { (id) } }
            p { "In " a href={"/console/collections/" (enc(&col.id))} { (col.title) } ": " (versions.len()) " stored version(s), oldest first." }
            @for (version, added, body) in versions {
                section {
                    h2 { "Version " (version) }
                    p.meta { "Added " (time(*added)) }
                    pre.json tabindex="0" aria-label={"JSON of version " (version)} {
                        (serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| serde_json::to_string_pretty(&v).ok()).unwrap_or_else(|| body.clone()))
                    }
                }
            }
        },
    )
}
