//! Reading dialplan XML into the model the hunt walks.
//!
//! This file owns the XML side: a small element tree built with quick-xml
//! (syntax errors carry file, line and column), the check that the document is
//! a dialplan the simulator understands, and the resulting model of contexts,
//! extensions, conditions and actions, with expressions that need no variable
//! expansion compiled once here. It must not evaluate conditions or touch a
//! channel.
//!
//! Accepted: an `<include>` root holding `<context>`s, or a `<document>` whose
//! `<section name="dialplan">` holds them (other sections are ignored);
//! comments, the XML declaration and processing instructions are ignored.
//! Anything the simulator would otherwise silently get wrong is refused with
//! [`DialplanError::Invalid`]: `X-PRE-PROCESS`, nested conditions, `<regex>`
//! blocks, time-of-day conditions, unknown `break` values, unexpected elements.
//! Text content of `<action>` and `<expression>` is trimmed.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::hunt::{compile_expression, Break};
use super::{expand::needs_expansion, fsstr::atoi, fsstr::switch_true, DialplanError};

/// A whole dialplan: contexts in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub contexts: Vec<Context>,
}

impl Model {
    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// Appends another file's contexts; a context seen before gets the new
    /// extensions appended.
    pub fn merge(&mut self, other: Model) {
        for ctx in other.contexts {
            match self.contexts.iter_mut().find(|c| c.name == ctx.name) {
                Some(existing) => existing.extensions.extend(ctx.extensions),
                None => self.contexts.push(ctx),
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Context {
    pub name: String,
    pub extensions: Vec<Extension>,
}

#[derive(Debug)]
pub(crate) struct Extension {
    /// The `name` attribute, `_anon_` when missing (as FreeSWITCH calls it).
    pub name: String,
    pub cont: bool,
    pub conditions: Vec<Condition>,
}

#[derive(Debug)]
pub(crate) struct Condition {
    /// `None` makes the condition absolute (always true).
    pub field: Option<String>,
    /// As written; expanded at hunt time.
    pub expression: String,
    /// Compiled here when the expression needs no expansion.
    pub compiled: Option<regex::bytes::Regex>,
    pub brk: Break,
    pub actions: Vec<ActionDef>,
    pub anti_actions: Vec<ActionDef>,
}

#[derive(Debug)]
pub(crate) struct ActionDef {
    pub application: String,
    pub data: String,
    pub inline: bool,
    /// The `loop` attribute (`atoi`; 1 when absent, ≤ 0 never runs).
    pub loops: i64,
}

/// One element of the parsed document.
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
    pos: usize,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where errors point: file name and the text for line/column numbers.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line_col(&self, pos: usize) -> (usize, usize) {
        let pos = pos.min(self.text.len());
        let before = &self.text.as_bytes()[..pos];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        (line, column)
    }

    fn syntax(&self, pos: usize, message: impl Into<String>) -> DialplanError {
        let (line, column) = self.line_col(pos);
        DialplanError::Xml {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    fn invalid(&self, el: &Element, message: impl Into<String>) -> DialplanError {
        let (line, column) = self.line_col(el.pos);
        DialplanError::Invalid {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Parses one file's text; `file` names it in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<Model, DialplanError> {
    parse_in(text, file, None)
}

/// Parses one file's text. `fragment_context` names the context of a file
/// that holds bare `<extension>`s, the way FreeSWITCH's stock `public.xml`
/// includes `public/*.xml` inside its `<context name="public">`.
pub(crate) fn parse_in(
    text: &str,
    file: &str,
    fragment_context: Option<&str>,
) -> Result<Model, DialplanError> {
    let src = Source { file, text };
    let root = parse_tree(&src)?;
    let mut model = Model::default();
    let is_fragment = root.name == "include"
        && !root.children.is_empty()
        && root.children.iter().all(|c| c.name == "extension");
    match root.name.as_str() {
        "include" if is_fragment => {
            let Some(context) = fragment_context else {
                return Err(src.invalid(
                    &root,
                    "bare <extension>s must be in a directory named after their context (like FreeSWITCH's public/*.xml)",
                ));
            };
            let extensions = root
                .children
                .iter()
                .map(|x| read_extension(&src, x))
                .collect::<Result<Vec<_>, _>>()?;
            model.merge(Model {
                contexts: vec![Context {
                    name: context.to_owned(),
                    extensions,
                }],
            });
        }
        "include" => read_contexts(&src, &root, &mut model)?,
        "document" => {
            for section in &root.children {
                if section.name != "section" {
                    return Err(src.invalid(
                        section,
                        format!("unexpected <{}> in <document>", section.name),
                    ));
                }
                if section.attr("name") == Some("dialplan") {
                    read_contexts(&src, section, &mut model)?;
                }
            }
        }
        other => {
            return Err(src.invalid(
                &root,
                format!("the root element must be <include> or <document>, not <{other}>"),
            ))
        }
    }
    Ok(model)
}

fn read_contexts(src: &Source, parent: &Element, model: &mut Model) -> Result<(), DialplanError> {
    for el in &parent.children {
        if el.name != "context" {
            return Err(unexpected(src, el, &parent.name));
        }
        let name = el
            .attr("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| src.invalid(el, "<context> without a name"))?;
        let mut extensions = Vec::new();
        for x in &el.children {
            if x.name != "extension" {
                return Err(unexpected(src, x, "context"));
            }
            extensions.push(read_extension(src, x)?);
        }
        model.merge(Model {
            contexts: vec![Context {
                name: name.to_owned(),
                extensions,
            }],
        });
    }
    Ok(())
}

fn unexpected(src: &Source, el: &Element, parent: &str) -> DialplanError {
    if el.name == "X-PRE-PROCESS" {
        src.invalid(el, "X-PRE-PROCESS is not supported by the simulator")
    } else {
        src.invalid(el, format!("unexpected <{}> in <{parent}>", el.name))
    }
}

/// Condition attributes that make FreeSWITCH check the date and time.
const TIME_ATTRIBUTES: &[&str] = &[
    "year",
    "yday",
    "mon",
    "mday",
    "week",
    "mweek",
    "wday",
    "hour",
    "minute",
    "minute-of-day",
    "time-of-day",
    "date-time",
];

fn read_extension(src: &Source, el: &Element) -> Result<Extension, DialplanError> {
    let name = el.attr("name").unwrap_or("_anon_").to_owned();
    let mut conditions = Vec::new();
    for c in &el.children {
        if c.name != "condition" {
            return Err(unexpected(src, c, "extension"));
        }
        conditions.push(read_condition(src, c, &name)?);
    }
    Ok(Extension {
        cont: switch_true(el.attr("continue")),
        name,
        conditions,
    })
}

fn read_condition(src: &Source, el: &Element, extension: &str) -> Result<Condition, DialplanError> {
    if let Some(attr) = TIME_ATTRIBUTES.iter().find(|a| el.attr(a).is_some()) {
        return Err(src.invalid(
            el,
            format!("time-of-day conditions ({attr}=) are not supported by the simulator"),
        ));
    }
    if el.attr("regex").is_some() {
        return Err(src.invalid(
            el,
            "regex=\"any|all|xor\" conditions are not supported by the simulator",
        ));
    }
    let brk = match el.attr("break") {
        None => Break::OnFalse,
        Some(v) if v.eq_ignore_ascii_case("on-false") => Break::OnFalse,
        Some(v) if v.eq_ignore_ascii_case("on-true") => Break::OnTrue,
        Some(v) if v.eq_ignore_ascii_case("always") => Break::Always,
        Some(v) if v.eq_ignore_ascii_case("never") => Break::Never,
        Some(v) => {
            return Err(src.invalid(
                el,
                format!("unknown break={v:?} (on-false, on-true, always or never)"),
            ))
        }
    };
    let mut expression = el.attr("expression").unwrap_or("").to_owned();
    let mut actions = Vec::new();
    let mut anti_actions = Vec::new();
    for child in &el.children {
        match child.name.as_str() {
            "action" => actions.push(read_action(src, child)?),
            "anti-action" => anti_actions.push(read_action(src, child)?),
            "expression" => expression = child.text.trim().to_owned(),
            "condition" => {
                return Err(src.invalid(
                    child,
                    "nested conditions are not supported by the simulator",
                ))
            }
            "regex" => {
                return Err(src.invalid(child, "<regex> blocks are not supported by the simulator"))
            }
            _ => return Err(unexpected(src, child, "condition")),
        }
    }
    let field = el.attr("field").map(str::to_owned);
    let compiled = match &field {
        Some(_) if !needs_expansion(&expression) => Some(compile_expression(&expression).map_err(
            |reason| DialplanError::BadRegex {
                extension: extension.to_owned(),
                expression: expression.clone(),
                reason,
            },
        )?),
        _ => None,
    };
    Ok(Condition {
        field,
        expression,
        compiled,
        brk,
        actions,
        anti_actions,
    })
}

fn read_action(src: &Source, el: &Element) -> Result<ActionDef, DialplanError> {
    if let Some(child) = el.children.first() {
        return Err(unexpected(src, child, &el.name));
    }
    let application = el
        .attr("application")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| src.invalid(el, format!("<{}> without an application", el.name)))?;
    let text = el.text.trim();
    let data = if text.is_empty() {
        el.attr("data").unwrap_or("")
    } else {
        text
    };
    Ok(ActionDef {
        application: application.to_owned(),
        data: data.to_owned(),
        inline: switch_true(el.attr("inline")),
        loops: el.attr("loop").map_or(1, atoi),
    })
}

/// Builds the element tree, rejecting anything that is not well-formed XML.
fn parse_tree(src: &Source) -> Result<Element, DialplanError> {
    let mut reader = Reader::from_str(src.text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|e| {
            let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
            src.syntax(at, e.to_string())
        })?;
        match event {
            Event::Start(start) => {
                if stack.is_empty() && root.is_some() {
                    return Err(src.syntax(pos, "a second root element"));
                }
                stack.push(element(src, &start, pos)?);
            }
            Event::Empty(start) => {
                let el = element(src, &start, pos)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(src.syntax(pos, "a second root element")),
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(src.syntax(pos, "closing tag without an opening tag"));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| src.syntax(pos, e.to_string()))?;
                add_text(src, &mut stack, text, pos)?;
            }
            Event::CData(c) => {
                let text = c.decode().map_err(|e| src.syntax(pos, e.to_string()))?;
                add_text(src, &mut stack, text, pos)?;
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(src.syntax(src.text.len(), format!("<{}> is never closed", open.name)));
    }
    root.ok_or_else(|| src.syntax(src.text.len(), "no root element"))
}

fn add_text(
    src: &Source,
    stack: &mut [Element],
    text: Cow<'_, str>,
    pos: usize,
) -> Result<(), DialplanError> {
    match stack.last_mut() {
        Some(el) => el.text.push_str(&text),
        None if text.trim().is_empty() => {}
        None => return Err(src.syntax(pos, "text outside the root element")),
    }
    Ok(())
}

fn element(src: &Source, start: &BytesStart<'_>, pos: usize) -> Result<Element, DialplanError> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| src.syntax(pos, e.to_string()))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr
            .unescape_value()
            .map_err(|e| src.syntax(pos, e.to_string()))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
        pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(xml: &str) -> DialplanError {
        parse(xml, "t.xml").unwrap_err()
    }

    #[test]
    fn include_and_document_roots() {
        let m = parse(
            r#"<?xml version="1.0"?>
            <!-- a comment -->
            <include><context name="a"><extension name="e" continue="true">
              <condition field="destination_number" expression="^(\d+)$">
                <action application="set" data="x=$1" inline="true" loop="2"/>
                <action application="log">INFO text &amp; more</action>
                <anti-action application="hangup"/>
              </condition>
              <condition><expression><![CDATA[ignored <here>]]></expression></condition>
            </extension></context></include>"#,
            "t.xml",
        )
        .unwrap();
        let e = &m.context("a").unwrap().extensions[0];
        assert!(e.cont);
        assert_eq!(e.conditions.len(), 2);
        let c = &e.conditions[0];
        assert!(c.compiled.is_some());
        assert_eq!(c.actions[0].loops, 2);
        assert!(c.actions[0].inline);
        assert_eq!(c.actions[1].data, "INFO text & more");
        assert_eq!(c.anti_actions[0].application, "hangup");
        assert_eq!(e.conditions[1].expression, "ignored <here>");
        assert!(e.conditions[1].field.is_none());

        let m = parse(
            r#"<document type="freeswitch/xml">
              <section name="configuration"><whatever/></section>
              <section name="dialplan"><context name="b"/></section>
            </document>"#,
            "d.xml",
        )
        .unwrap();
        assert!(m.context("b").is_some());
    }

    #[test]
    fn syntax_errors_have_file_line_and_column() {
        let e = err("<include>\n  <context name=\"a\">\n</include>");
        let DialplanError::Xml { file, line, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!((file.as_str(), *line), ("t.xml", 3));
        assert!(matches!(err("<include>"), DialplanError::Xml { .. }));
        assert!(matches!(err(""), DialplanError::Xml { .. }));
        assert!(matches!(
            err("<include/><include/>"),
            DialplanError::Xml { .. }
        ));
        assert!(matches!(
            err("<include a='1' a='2'/>"),
            DialplanError::Xml { .. }
        ));
        assert!(matches!(
            err("<include>&bogus;</include>"),
            DialplanError::Xml { .. }
        ));
        assert!(err("<a>\n<b></a>").to_string().starts_with("t.xml:2:"));
    }

    #[test]
    fn unsupported_features_are_refused() {
        for xml in [
            r#"<include><X-PRE-PROCESS cmd="include" data="x"/></include>"#,
            r#"<include><context name="a"><extension><condition><condition/></condition></extension></context></include>"#,
            r#"<include><context name="a"><extension><condition wday="1"/></extension></context></include>"#,
            r#"<include><context name="a"><extension><condition regex="any"/></extension></context></include>"#,
            r#"<include><context name="a"><extension><condition break="sometimes"/></extension></context></include>"#,
            r#"<include><context><extension/></context></include>"#,
            r#"<include><context name="a"><extension><condition><action data="x"/></condition></extension></context></include>"#,
            r#"<include><extension/></include>"#,
            r#"<dialplan/>"#,
        ] {
            assert!(
                matches!(parse(xml, "t.xml"), Err(DialplanError::Invalid { .. })),
                "{xml}"
            );
        }
    }

    #[test]
    fn bad_static_regex_fails_at_load() {
        let e = err(
            r#"<include><context name="a"><extension name="bad"><condition field="destination_number" expression="^(\d+$"/></extension></context></include>"#,
        );
        let DialplanError::BadRegex {
            extension,
            expression,
            ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            (extension.as_str(), expression.as_str()),
            ("bad", "^(\\d+$")
        );
        // An absolute condition's expression is never compiled (FreeSWITCH ignores it).
        assert!(parse(
            r#"<include><context name="a"><extension><condition expression="(("/></extension></context></include>"#,
            "t.xml"
        )
        .is_ok());
    }

    #[test]
    fn same_context_in_two_files_appends() {
        let mut m = parse(
            r#"<include><context name="a"><extension name="1"/></context></include>"#,
            "1.xml",
        )
        .unwrap();
        m.merge(parse(r#"<include><context name="a"><extension name="2"/></context><context name="b"/></include>"#, "2.xml").unwrap());
        let names: Vec<_> = m
            .context("a")
            .unwrap()
            .extensions
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["1", "2"]);
        assert!(m.context("b").is_some());
    }
}
