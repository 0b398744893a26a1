//! `freeswitch-conf/` holds together: every file is well-formed XML, the
//! Event Socket applies an ACL list that exists, the modules fsgate needs are
//! loaded, the carrier gateway puts the caller ID in From, and the variables
//! the files use are set in `vars.fsgate.xml`. (A real FreeSWITCH loads these
//! files outside this repository; this catches what can be caught here.)

use std::path::{Path, PathBuf};

use quick_xml::events::Event;
use quick_xml::Reader;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn xml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            xml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "xml") {
            out.push(path);
        }
    }
}

/// Every element as (name, attributes), in document order; panics on
/// malformed XML.
fn elements(path: &Path) -> Vec<(String, Vec<(String, String)>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut reader = Reader::from_str(&text);
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap_or_else(|err| {
                            panic!("{}: bad attribute: {err}", path.display())
                        });
                        (
                            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                            a.unescape_value().unwrap().into_owned(),
                        )
                    })
                    .collect();
                out.push((name, attrs));
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("{} is not well-formed: {e}", path.display()),
        }
    }
    out
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn params(path: &str) -> Vec<(String, String)> {
    elements(&root().join(path))
        .into_iter()
        .filter(|(n, _)| n == "param")
        .map(|(_, a)| {
            (
                attr(&a, "name").unwrap().to_owned(),
                attr(&a, "value").unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_file_is_well_formed() {
    let mut files = Vec::new();
    xml_files(&root().join("freeswitch-conf"), &mut files);
    xml_files(&root().join("dialplan"), &mut files);
    assert!(files.len() >= 8, "{files:?}");
    for f in files {
        assert!(!elements(&f).is_empty(), "{}", f.display());
    }
}

/// FreeSWITCH's pre-processor acts on `<X-PRE-PROCESS …/>` lines inside XML
/// comments too: a commented-out include is included (that broke start-up
/// with "unclosed <!--"), a commented-out set still sets. None may stand in
/// a comment of anything FreeSWITCH loads.
#[test]
fn no_preprocessor_line_hides_in_a_comment() {
    let mut files = Vec::new();
    xml_files(&root().join("freeswitch-conf"), &mut files);
    xml_files(&root().join("dialplan"), &mut files);
    xml_files(&root().join("docker/freeswitch"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("<!--") {
            let end = rest[start..].find("-->").map_or(rest.len(), |e| start + e);
            let comment = &rest[start..end];
            assert!(
                !comment.contains("X-PRE-PROCESS"),
                "{}: a pre-processor line inside a comment:\n{comment}",
                f.display()
            );
            rest = &rest[end..];
        }
    }
}

#[test]
fn event_socket_applies_an_acl_list_that_exists() {
    let es = params("freeswitch-conf/autoload_configs/event_socket.conf.xml");
    let acl = es
        .iter()
        .find(|(n, _)| n == "apply-inbound-acl")
        .expect("an inbound ACL")
        .1
        .clone();
    assert!(es.iter().any(|(n, v)| n == "listen-port" && v == "8021"));
    let lists: Vec<String> =
        elements(&root().join("freeswitch-conf/autoload_configs/acl.conf.xml"))
            .into_iter()
            .filter(|(n, _)| n == "list")
            .map(|(_, a)| attr(&a, "name").unwrap().to_owned())
            .collect();
    assert!(lists.contains(&acl), "{acl} not in {lists:?}");
    assert!(lists.contains(&"domains".to_owned()), "stock lists kept");
}

#[test]
fn the_modules_fsgate_needs_are_loaded() {
    let loaded: Vec<String> =
        elements(&root().join("freeswitch-conf/autoload_configs/modules.conf.xml"))
            .into_iter()
            .filter(|(n, _)| n == "load")
            .map(|(_, a)| attr(&a, "module").unwrap().to_owned())
            .collect();
    for m in [
        "mod_event_socket",
        "mod_curl",
        "mod_sofia",
        "mod_dptools",
        "mod_commands",
        "mod_dialplan_xml",
        "mod_tone_stream",
    ] {
        assert!(loaded.iter().any(|l| l == m), "{m} missing from {loaded:?}");
    }
}

#[test]
fn the_carrier_gateway_presents_the_caller_id_in_from() {
    let gw = params("freeswitch-conf/sip_profiles/external/fsgate_carrier.xml");
    assert!(gw
        .iter()
        .any(|(n, v)| n == "caller-id-in-from" && v == "true"));
}

#[test]
fn every_preprocessor_variable_used_is_set() {
    let set: Vec<String> = elements(&root().join("freeswitch-conf/vars.fsgate.xml"))
        .into_iter()
        .filter(|(n, a)| n == "X-PRE-PROCESS" && attr(a, "cmd") == Some("set"))
        .map(|(_, a)| {
            attr(&a, "data")
                .unwrap()
                .split('=')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut files = Vec::new();
    xml_files(&root().join("freeswitch-conf"), &mut files);
    let stock = ["domain"];
    for f in files {
        let text = without_comments(&std::fs::read_to_string(&f).unwrap());
        for used in text
            .split("$${")
            .skip(1)
            .map(|s| s.split('}').next().unwrap())
        {
            assert!(
                set.iter().any(|s| s == used) || stock.contains(&used),
                "{}: $${{{used}}} is never set",
                f.display()
            );
        }
    }
}

fn without_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .split_once("-->")
            .map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out
}
