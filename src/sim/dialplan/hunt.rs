//! The hunt: conditions, regular expressions, captures and extension order, as
//! mod_dialplan_xml's `dialplan_hunt` / `parse_exten` do it.
//!
//! This file owns evaluating conditions against a channel, `$N` substitution,
//! the `break` and `continue` rules, and running inline actions while hunting.
//! It must not execute call-control applications (it only returns them as
//! [`Action`]s) and must not know XML.
//!
//! FreeSWITCH's rules reproduced here:
//! * A condition with a `field` matches its (expanded) `expression` against the
//!   caller-profile field of that name, or against the expanded field when the
//!   field contains `$` (`${var}`); a missing field is the empty string. A
//!   condition without `field` is always true.
//! * Captures belong to the condition they come from: `$1`…`$N` (also `${1}`,
//!   and `$0` for the whole match) are substituted in that condition's actions,
//!   and only when its expression contains `(`; elsewhere `$1` stays literal.
//!   The captures are also stored in the channel variable `DP_MATCH`.
//! * Actions of each passing condition are queued as conditions are walked;
//!   a failing condition queues its anti-actions. `break` (default `on-false`)
//!   decides whether to stop. The extension counts as matched when the last
//!   condition evaluated passed **or had anti-actions**.
//! * The first matched extension ends the hunt unless it has `continue="true"`;
//!   with `auto_hunt=true` the hunt starts at the extension named like the
//!   destination number. An unknown context falls back to a context named
//!   `global`, as FreeSWITCH does.
//! * Expressions are PCRE in FreeSWITCH and the `regex` crate here, compiled
//!   byte-wise without Unicode classes (as PCRE without UTF mode); `_NXXX`
//!   Asterisk patterns and `/expr/i` (`i`, `s` flags) are understood. Patterns
//!   the `regex` crate cannot do (look-around, back-references) are a
//!   [`DialplanError::BadRegex`], where FreeSWITCH would log and not match.

use regex::bytes::{Regex, RegexBuilder};

use super::app::{apply_variable_app, log_line, App};
use super::expand::expand;
use super::xml::{ActionDef, Condition, Extension, Model};
use super::{curl, fsstr::switch_true, Action, ChannelVars, DialplanError};

/// When a condition ends the walk through its extension's conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Break {
    OnFalse,
    OnTrue,
    Always,
    Never,
}

impl Break {
    fn stops(self, passed: bool) -> bool {
        match self {
            Break::OnFalse => !passed,
            Break::OnTrue => passed,
            Break::Always => true,
            Break::Never => false,
        }
    }
}

/// `switch_ast2regex`: `_` patterns with N (2-9), X (0-9), Z (1-9) and `.`
/// (anything), anchored at both ends.
fn ast2regex(pattern: &str) -> String {
    let mut out = String::from("^");
    for c in pattern.chars() {
        match c {
            'N' => out.push_str("[2-9]"),
            'X' => out.push_str("[0-9]"),
            'Z' => out.push_str("[1-9]"),
            '.' => out.push_str(".*"),
            other => out.push(other),
        }
    }
    out.push('$');
    out
}

/// Compiles an (already expanded) expression the way `switch_regex_perform`
/// reads it. The error is a human-readable reason.
pub(crate) fn compile_expression(expression: &str) -> Result<Regex, String> {
    let mut pattern = match expression.strip_prefix('_') {
        Some(rest) => ast2regex(rest),
        None => expression.to_owned(),
    };
    let (mut caseless, mut dotall) = (false, false);
    if let Some(rest) = pattern.strip_prefix('/') {
        let Some(end) = rest.rfind('/') else {
            return Err("missing ending '/' delimiter".to_owned());
        };
        let opts = &rest[end + 1..];
        caseless = opts.contains('i');
        dotall = opts.contains('s');
        pattern = rest[..end].to_owned();
    }
    RegexBuilder::new(&pattern)
        .unicode(false)
        .case_insensitive(caseless)
        .dot_matches_new_line(dotall)
        .build()
        .map_err(|e| e.to_string())
}

/// The captures of one successful match, owned (byte strings, `None` for a
/// group that did not take part), plus PCRE's match count (highest group that
/// matched + 1).
struct Captures {
    groups: Vec<Option<Vec<u8>>>,
    match_count: usize,
}

impl Captures {
    fn of(re: &Regex, subject: &[u8]) -> Option<Captures> {
        let caps = re.captures(subject)?;
        let groups: Vec<Option<Vec<u8>>> = caps
            .iter()
            .map(|g| g.map(|m| m.as_bytes().to_vec()))
            .collect();
        let match_count = groups
            .iter()
            .rposition(Option::is_some)
            .map_or(1, |i| i + 1);
        Some(Captures {
            groups,
            match_count,
        })
    }

    /// `DP_MATCH` as FreeSWITCH leaves it: the single match, or
    /// `ARRAY::m0|:m1|:...` when there are several.
    fn dp_match(&self) -> Option<String> {
        let values: Vec<String> = self.groups[..self.match_count]
            .iter()
            .flatten()
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        match values.len() {
            0 => None,
            1 => values.into_iter().next(),
            _ => Some(format!("ARRAY::{}", values.join("|:"))),
        }
    }
}

/// `switch_perform_substitution`: `$N` and `${N}` become capture N (empty when
/// there is no such group); any other `$` is copied. Like FreeSWITCH, the
/// result is cut at `(len(data) + len(field) + 10) * match_count - 1` bytes.
fn substitute(data: &str, field: &[u8], caps: &Captures) -> String {
    let b = data.as_bytes();
    let limit = (b.len() + field.len() + 10) * caps.match_count - 1;
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut x = 0;
    while x < b.len() && out.len() < limit {
        if b[x] != b'$' {
            out.push(b[x]);
            x += 1;
            continue;
        }
        let dollar = x;
        x += 1;
        let brace = b.get(x) == Some(&b'{');
        if brace {
            x += 1;
        }
        let digits_start = x;
        while x < b.len() && b[x].is_ascii_digit() && x - digits_start < 9 {
            x += 1;
        }
        if x == digits_start || (brace && b.get(x) != Some(&b'}')) {
            // Not a capture reference: copy the `$` and go on after it.
            out.push(b'$');
            x = dollar + 1;
            continue;
        }
        let index: usize = std::str::from_utf8(&b[digits_start..x])
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(usize::MAX);
        if brace {
            x += 1;
        }
        if index <= 256 {
            if let Some(Some(value)) = caps.groups.get(index) {
                out.extend_from_slice(value);
            }
        }
    }
    out.truncate(limit);
    String::from_utf8_lossy(&out).into_owned()
}

/// The hunt over `model` (see the module docs).
pub(crate) async fn hunt<C: ChannelVars + Send + ?Sized>(
    model: &Model,
    context: &str,
    chan: &mut C,
    http: &reqwest::Client,
) -> Result<Vec<Action>, DialplanError> {
    let ctx = model
        .context(context)
        .or_else(|| model.context("global"))
        .ok_or_else(|| DialplanError::UnknownContext(context.to_owned()))?;
    let mut start = 0;
    if switch_true(chan.variable("auto_hunt").as_deref()) {
        if let Some(dest) = chan.profile_field("destination_number") {
            start = ctx
                .extensions
                .iter()
                .position(|e| e.name == dest)
                .unwrap_or(0);
        }
    }
    let mut queued = Vec::new();
    for ext in &ctx.extensions[start..] {
        tracing::debug!(context = %ctx.name, extension = %ext.name, cont = ext.cont, "dialplan: parsing");
        let matched = parse_exten(ext, chan, http, &mut queued).await?;
        if matched && !ext.cont {
            break;
        }
    }
    Ok(queued)
}

/// `parse_exten`: walks one extension's conditions; true when it matched.
async fn parse_exten<C: ChannelVars + Send + ?Sized>(
    ext: &Extension,
    chan: &mut C,
    http: &reqwest::Client,
    queued: &mut Vec<Action>,
) -> Result<bool, DialplanError> {
    let mut proceed = false;
    for cond in &ext.conditions {
        let evaluated = evaluate(cond, ext, &*chan)?;
        let passed = evaluated.is_some();
        proceed = passed;
        match evaluated {
            None => {
                for anti in &cond.anti_actions {
                    run_or_queue(anti, anti.data.clone(), ext, chan, http, queued).await?;
                    proceed = true;
                }
            }
            Some(hit) => {
                if let Some(caps) = &hit.captures {
                    chan.set_variable("DP_MATCH", None);
                    chan.set_variable("DP_MATCH", caps.dp_match());
                }
                for act in &cond.actions {
                    let data = match &hit.captures {
                        Some(caps) => substitute(&act.data, hit.field_data.as_bytes(), caps),
                        None => act.data.clone(),
                    };
                    run_or_queue(act, data, ext, chan, http, queued).await?;
                }
            }
        }
        if cond.brk.stops(passed) {
            break;
        }
    }
    Ok(proceed)
}

/// A passing condition: the field's text and, when the expression has `(`,
/// the captures to substitute.
struct Hit {
    field_data: String,
    captures: Option<Captures>,
}

/// Evaluates one condition; `None` when it failed.
fn evaluate<C: ChannelVars + ?Sized>(
    cond: &Condition,
    ext: &Extension,
    chan: &C,
) -> Result<Option<Hit>, DialplanError> {
    let Some(field) = &cond.field else {
        tracing::debug!(extension = %ext.name, "dialplan: absolute condition");
        return Ok(Some(Hit {
            field_data: String::new(),
            captures: None,
        }));
    };
    let field_data = if field.contains('$') {
        expand(field, chan)
    } else {
        chan.profile_field(field).unwrap_or_default()
    };
    let expression = expand(&cond.expression, chan);
    let compiled;
    let re = match &cond.compiled {
        Some(re) if expression == cond.expression => re,
        _ => {
            compiled =
                compile_expression(&expression).map_err(|reason| DialplanError::BadRegex {
                    extension: ext.name.clone(),
                    expression: expression.clone(),
                    reason,
                })?;
            &compiled
        }
    };
    let caps = Captures::of(re, field_data.as_bytes());
    tracing::debug!(
        extension = %ext.name,
        field = %field,
        value = %field_data,
        expression = %expression,
        pass = caps.is_some(),
        "dialplan: regex"
    );
    Ok(caps.map(|caps| Hit {
        captures: expression.contains('(').then_some(caps),
        field_data,
    }))
}

/// Runs an inline action now, or queues it; honours `loop`.
async fn run_or_queue<C: ChannelVars + Send + ?Sized>(
    def: &ActionDef,
    data: String,
    ext: &Extension,
    chan: &mut C,
    http: &reqwest::Client,
    queued: &mut Vec<Action>,
) -> Result<(), DialplanError> {
    for _ in 0..def.loops.max(0) {
        if def.inline {
            run_inline(&def.application, &data, ext, chan, http).await?;
        } else {
            queued.push(Action {
                application: def.application.clone(),
                data: data.clone(),
                extension: ext.name.clone(),
            });
        }
    }
    Ok(())
}

/// Executes one inline action against the channel.
async fn run_inline<C: ChannelVars + Send + ?Sized>(
    application: &str,
    data: &str,
    ext: &Extension,
    chan: &mut C,
    http: &reqwest::Client,
) -> Result<(), DialplanError> {
    if !App::is_known(application) {
        return Err(DialplanError::UnknownApplication(application.to_owned()));
    }
    if !App::may_run_inline(application) {
        return Err(DialplanError::NotInline {
            extension: ext.name.clone(),
            application: application.to_owned(),
        });
    }
    let expanded = expand(data, &*chan);
    tracing::debug!(extension = %ext.name, application, data = %expanded, "dialplan: inline action");
    let app = App::parse(application, &expanded)?;
    chan.inline_started(application, &expanded);
    match &app {
        App::Curl(req) => {
            let (timeout, connect_timeout) = curl::timeouts(&*chan);
            let bundle = curl::ca_bundle(&*chan);
            let outcome =
                curl::perform(req, timeout, connect_timeout, bundle.as_deref(), http).await;
            curl::apply(&outcome, chan);
        }
        App::Log { level, message } => log_line(level, message),
        other => {
            apply_variable_app(other, chan);
        }
    }
    chan.inline_completed();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testchan::TestChannel;
    use super::super::Dialplan;
    use super::*;

    fn caps(re: &str, subject: &str) -> Captures {
        Captures::of(&compile_expression(re).unwrap(), subject.as_bytes()).unwrap()
    }

    #[test]
    fn substitution_like_freeswitch() {
        let c = caps(r"^(\d{3})(\d+)$", "5551234");
        let f = b"5551234";
        assert_eq!(substitute("$1-$2 ${1}x $0", f, &c), "555-1234 555x 5551234");
        assert_eq!(substitute("$3|$9|$100", f, &c), "||");
        assert_eq!(substitute("${foo} $a $", f, &c), "${foo} $a $");
        assert_eq!(substitute("${1", f, &c), "${1");
        let c = caps(r"^(a)?(b)$", "b");
        assert_eq!(substitute("[$1][$2]", b"b", &c), "[][b]");
    }

    #[test]
    fn substitution_is_cut_like_freeswitch() {
        let c = caps("^(x)$", "x");
        assert_eq!(substitute("$0$0$0$0", b"x", &c), "xxxx");
        // (8 + 100 + 10) * 2 = 236, so at most 235 bytes come out.
        let field = "a".repeat(100);
        let c = caps("^(.*)$", &field);
        assert_eq!(substitute("$1$1$1$1", field.as_bytes(), &c).len(), 235);
    }

    #[test]
    fn dp_match_value() {
        assert_eq!(
            caps("^(1)(2)$", "12").dp_match().as_deref(),
            Some("ARRAY::12|:1|:2")
        );
        assert_eq!(caps("^1$", "1").dp_match().as_deref(), Some("1"));
    }

    #[test]
    fn expressions_like_switch_regex_perform() {
        assert!(compile_expression("_1NXX").unwrap().is_match(b"1234"));
        assert!(!compile_expression("_1NXX").unwrap().is_match(b"1134"));
        assert!(compile_expression("_9.").unwrap().is_match(b"9"));
        assert!(compile_expression("/^abc$/i").unwrap().is_match(b"ABC"));
        assert!(compile_expression("/abc").is_err());
        assert!(compile_expression(r"^\d+$").unwrap().is_match(b"123"));
        // ASCII classes, as PCRE without UTF: an Arabic-Indic digit is no \d.
        assert!(!compile_expression(r"^\d$")
            .unwrap()
            .is_match("٣".as_bytes()));
        assert!(compile_expression("^é$").unwrap().is_match("é".as_bytes()));
        assert!(compile_expression(r"(?=x)").is_err());
    }

    fn dp(body: &str) -> Dialplan {
        Dialplan::from_xml(&format!(
            "<include><context name=\"c\">{body}</context></include>"
        ))
        .unwrap()
    }

    async fn run(d: &Dialplan, chan: &mut TestChannel) -> Vec<(String, String)> {
        let http = curl::client().unwrap();
        d.hunt("c", chan, &http)
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.application, a.data))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, d)| (a.to_string(), d.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn break_modes() {
        let cond = |brk: &str, expr: &str| {
            format!(
                r#"<condition field="destination_number" expression="{expr}" break="{brk}">
                     <action application="log" data="pass"/><anti-action application="log" data="fail"/>
                   </condition>"#
            )
        };
        let last = r#"<condition><action application="log" data="last"/></condition>"#;
        let cases = [
            ("on-false", "^2000$", vec![("log", "pass"), ("log", "last")]),
            ("on-false", "^x$", vec![("log", "fail")]),
            ("on-true", "^2000$", vec![("log", "pass")]),
            ("on-true", "^x$", vec![("log", "fail"), ("log", "last")]),
            ("always", "^2000$", vec![("log", "pass")]),
            ("always", "^x$", vec![("log", "fail")]),
            ("never", "^2000$", vec![("log", "pass"), ("log", "last")]),
            ("never", "^x$", vec![("log", "fail"), ("log", "last")]),
        ];
        for (brk, expr, want) in cases {
            let d = dp(&format!("<extension>{}{last}</extension>", cond(brk, expr)));
            let mut chan = TestChannel::new("1000", "2000");
            assert_eq!(
                run(&d, &mut chan).await,
                pairs(&want),
                "break={brk} expr={expr}"
            );
        }
    }

    #[tokio::test]
    async fn matching_continue_and_anti_action_semantics() {
        let d = dp(r#"
            <extension name="fails_quietly">
              <condition field="destination_number" expression="^9$"><action application="log" data="no"/></condition>
            </extension>
            <extension name="tagger" continue="true">
              <condition><action application="set" data="tagged=yes"/></condition>
            </extension>
            <extension name="anti">
              <condition field="caller_id_number" expression="^nobody$">
                <anti-action application="log" data="anti"/>
              </condition>
            </extension>
            <extension name="never_reached">
              <condition><action application="log" data="unreachable"/></condition>
            </extension>"#);
        let mut chan = TestChannel::new("1000", "2000");
        // The anti-action makes "anti" count as matched, which ends the hunt.
        assert_eq!(
            run(&d, &mut chan).await,
            pairs(&[("set", "tagged=yes"), ("log", "anti")])
        );
    }

    #[tokio::test]
    async fn captures_are_per_condition() {
        let d = dp(r#"
            <extension name="x">
              <condition field="destination_number" expression="^(\d)(\d+)$">
                <action application="log" data="first $1 $2"/>
              </condition>
              <condition field="caller_id_number" expression="^1000$">
                <action application="log" data="no parens $1"/>
              </condition>
              <condition field="caller_id_number" expression="^(?:1000)$">
                <action application="log" data="group-less $1"/>
              </condition>
              <condition>
                <action application="log" data="absolute $1 ${DP_MATCH}"/>
              </condition>
            </extension>"#);
        let mut chan = TestChannel::new("1000", "2000");
        assert_eq!(
            run(&d, &mut chan).await,
            pairs(&[
                ("log", "first 2 000"),
                ("log", "no parens $1"),
                ("log", "group-less "),
                ("log", "absolute $1 ${DP_MATCH}"),
            ])
        );
        assert_eq!(chan.get("DP_MATCH").as_deref(), Some("1000"));
    }

    #[tokio::test]
    async fn inline_set_is_seen_by_later_conditions_and_loops() {
        let d = dp(r#"
            <extension name="x">
              <condition>
                <action application="set" data="route=${destination_number}" inline="true"/>
                <action application="set" data="late=1"/>
                <action application="log" data="twice" loop="2"/>
                <action application="log" data="never" loop="0"/>
              </condition>
              <condition field="${route}" expression="^2000$">
                <action application="log" data="seen ${route} ${late}"/>
              </condition>
              <condition field="${late}" expression="^1$">
                <action application="log" data="not inline, so not seen"/>
                <anti-action application="log" data="late is unset"/>
              </condition>
            </extension>"#);
        let mut chan = TestChannel::new("1000", "2000");
        assert_eq!(
            run(&d, &mut chan).await,
            pairs(&[
                ("set", "late=1"),
                ("log", "twice"),
                ("log", "twice"),
                ("log", "seen ${route} ${late}"),
                ("log", "late is unset"),
            ])
        );
        assert_eq!(chan.get("route").as_deref(), Some("2000"));
    }

    #[tokio::test]
    async fn expressions_with_variables_compile_at_hunt_time() {
        let d = dp(r#"
            <extension name="dyn">
              <condition field="destination_number" expression="^${prefix}(\d+)$">
                <action application="log" data="rest $1"/>
              </condition>
            </extension>"#);
        let mut chan = TestChannel::new("1000", "2000");
        chan.var("prefix", "20");
        assert_eq!(run(&d, &mut chan).await, pairs(&[("log", "rest 00")]));
        chan.var("prefix", "(");
        let http = curl::client().unwrap();
        let err = d.hunt("c", &mut chan, &http).await.unwrap_err();
        assert!(
            matches!(&err, DialplanError::BadRegex { extension, expression, .. }
                if extension == "dyn" && expression == "^((\\d+)$"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn auto_hunt_and_global_fallback() {
        let d = Dialplan::from_xml(
            r#"<include><context name="global">
                 <extension name="first"><condition><action application="log" data="first"/></condition></extension>
                 <extension name="2000"><condition><action application="log" data="named"/></condition></extension>
               </context></include>"#,
        )
        .unwrap();
        let http = curl::client().unwrap();
        let mut chan = TestChannel::new("1000", "2000");
        let acts = d.hunt("elsewhere", &mut chan, &http).await.unwrap();
        assert_eq!(acts[0].data, "first");
        chan.var("auto_hunt", "true");
        let acts = d.hunt("global", &mut chan, &http).await.unwrap();
        assert_eq!(
            (acts[0].data.as_str(), acts[0].extension.as_str()),
            ("named", "2000")
        );
    }

    #[tokio::test]
    async fn inline_errors_name_the_application() {
        let http = curl::client().unwrap();
        let mut chan = TestChannel::new("1000", "2000");
        let d = dp(
            r#"<extension name="e"><condition><action application="bridge" data="x" inline="true"/></condition></extension>"#,
        );
        let err = d.hunt("c", &mut chan, &http).await.unwrap_err();
        assert!(
            matches!(&err, DialplanError::NotInline { application, .. } if application == "bridge")
        );
        let d = dp(
            r#"<extension name="e"><condition><action application="frobnicate" inline="true"/></condition></extension>"#,
        );
        let err = d.hunt("c", &mut chan, &http).await.unwrap_err();
        assert_eq!(err.to_string(), "unknown application \"frobnicate\"");
    }
}
