//! Every normative statement of MQTT 3.1.1 (OASIS Standard, 29 October 2014,
//! the `[MQTT-x.y.z-n]` ids of its text, in their order), in short, with what
//! it binds and ggcore's verdict. Ids are spelled as the standard spells
//! them, including its two odd ones (`MQTT-3.1.2.7`, `MQTT-3-8.3-4`).

use std::collections::{BTreeMap, BTreeSet};

use super::Case;

/// Whom a statement binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binds {
    /// The server.
    Server,
    /// Client and server alike (a sender's or a receiver's rule): the core's
    /// side is checked.
    Both,
    /// What the client sends; the server must refuse a packet that breaks it
    /// (by closing the connection: MQTT-3.1.4-1 for CONNECT, MQTT-4.8.0-1
    /// otherwise), which is what is checked.
    Enforced,
    /// Only the client's own conduct, which a server cannot see or check.
    Client,
    /// MQTT over WebSocket.
    WebSocket,
}

impl Binds {
    /// Statements a server has to meet.
    pub fn binds_server(self) -> bool {
        matches!(self, Binds::Server | Binds::Both | Binds::Enforced)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// ggcore does what the statement says; its cases check it.
    Covered,
    /// ggcore deliberately does otherwise, for the reason given; its cases
    /// check what ggcore does instead (docs/mqtt.md).
    Different(&'static str),
    /// Nothing in ggcore's MQTT server to check, for the reason given.
    NotApplicable(&'static str),
}

pub struct Statement {
    pub id: &'static str,
    pub binds: Binds,
    /// What it requires, in short (not the standard's words).
    pub text: &'static str,
    pub verdict: Verdict,
}

use Binds::*;
use Verdict::*;

const CLIENT_ONLY: &str = "binds the client";
const NO_RETAIN: &str =
    "retained messages are not kept: Greengrass has none, so the retain flag is ignored and every message is delivered with RETAIN 0";
const NO_QOS2_OUT: &str = "ggcore never sends QoS 2: a QoS 2 subscription is granted QoS 1, so messages reach devices at QoS 0 or 1";
const BAD_FILTER: &str =
    "a malformed filter is refused with SUBACK 0x80 instead of closing the connection: the device keeps its connection and the other filters of the same SUBSCRIBE";
const NO_WEBSOCKET: &str = "ggcore serves MQTT over TLS only; it has no WebSocket transport";

const fn s(id: &'static str, binds: Binds, text: &'static str, verdict: Verdict) -> Statement {
    Statement { id, binds, text, verdict }
}

pub const STATEMENTS: &[Statement] = &[
    s("MQTT-1.5.3-1", Both, "UTF-8 strings are well-formed (no encoded surrogates); a receiver of ill-formed UTF-8 closes the connection.", Covered),
    s("MQTT-1.5.3-2", Both, "A UTF-8 string holds no U+0000; a receiver of one closes the connection.", Covered),
    s("MQTT-1.5.3-3", Both, "EF BB BF is U+FEFF wherever it appears: a receiver neither skips nor strips it.", Covered),
    s("MQTT-2.2.2-1", Both, "Reserved flag bits carry the values of the flag table.", Covered),
    s("MQTT-2.2.2-2", Both, "A receiver of invalid flags closes the connection.", Covered),
    s("MQTT-2.3.1-1", Both, "SUBSCRIBE, UNSUBSCRIBE and PUBLISH at QoS > 0 carry a non-zero packet identifier.", Covered),
    s("MQTT-2.3.1-2", Client, "A client gives each new such packet an unused packet identifier.", NotApplicable(CLIENT_ONLY)),
    s("MQTT-2.3.1-3", Client, "A client re-sending a packet keeps its identifier, free again once acknowledged.", NotApplicable(CLIENT_ONLY)),
    s("MQTT-2.3.1-4", Server, "The same holds for the server sending PUBLISH at QoS > 0.", Covered),
    s("MQTT-2.3.1-5", Both, "A QoS 0 PUBLISH carries no packet identifier.", Covered),
    s("MQTT-2.3.1-6", Both, "PUBACK, PUBREC and PUBREL carry the identifier of their PUBLISH.", Covered),
    s("MQTT-2.3.1-7", Server, "SUBACK and UNSUBACK carry the identifier of their SUBSCRIBE or UNSUBSCRIBE.", Covered),
    s("MQTT-3.1.0-1", Enforced, "The client's first packet is CONNECT.", Covered),
    s("MQTT-3.1.0-2", Server, "A second CONNECT is a protocol violation: the client is disconnected.", Covered),
    s("MQTT-3.1.2-1", Server, "A protocol name other than MQTT: disconnect, or carry on under another specification (not this one).", Covered),
    s("MQTT-3.1.2-2", Server, "An unsupported protocol level gets CONNACK 0x01, then the client is disconnected.", Covered),
    s("MQTT-3.1.2-3", Server, "The CONNECT's reserved flag must be 0, else the client is disconnected.", Covered),
    s("MQTT-3.1.2-4", Server, "CleanSession 0 resumes the client id's session (or makes one), kept after the client disconnects.", Covered),
    s("MQTT-3.1.2-5", Server, "For a disconnected CleanSession 0 client, QoS 1 and 2 messages matching its subscriptions are kept.", Covered),
    s("MQTT-3.1.2-6", Server, "CleanSession 1 discards any previous session; the new one ends with the connection and is never reused.", Covered),
    s("MQTT-3.1.2.7", Server, "Retained messages are not session state: they are not deleted when a session ends.", Different(NO_RETAIN)),
    s("MQTT-3.1.2-8", Server, "A will is stored and published when the connection closes other than by DISCONNECT.", Covered),
    s("MQTT-3.1.2-9", Enforced, "With the will flag set, will topic and will message are in the payload.", Covered),
    s("MQTT-3.1.2-10", Server, "The will is removed once published, or on DISCONNECT.", Covered),
    s("MQTT-3.1.2-11", Enforced, "With the will flag 0: will QoS and retain 0, no will topic or message.", Covered),
    s("MQTT-3.1.2-12", Server, "With the will flag 0 no will is published.", Covered),
    s("MQTT-3.1.2-13", Enforced, "With the will flag 0 the will QoS is 0.", Covered),
    s("MQTT-3.1.2-14", Enforced, "The will QoS is 0, 1 or 2, never 3.", Covered),
    s("MQTT-3.1.2-15", Enforced, "With the will flag 0 the will retain flag is 0.", Covered),
    s("MQTT-3.1.2-16", Server, "A will with retain 0 is published as a non-retained message.", Covered),
    s("MQTT-3.1.2-17", Server, "A will with retain 1 is published as a retained message.", Different(NO_RETAIN)),
    s("MQTT-3.1.2-18", Enforced, "With the user name flag 0 there is no user name.", Covered),
    s("MQTT-3.1.2-19", Enforced, "With the user name flag 1 there is a user name.", Covered),
    s("MQTT-3.1.2-20", Enforced, "With the password flag 0 there is no password.", Covered),
    s("MQTT-3.1.2-21", Enforced, "With the password flag 1 there is a password.", Covered),
    s("MQTT-3.1.2-22", Enforced, "With the user name flag 0 the password flag is 0.", Covered),
    s("MQTT-3.1.2-23", Client, "A client with nothing else to send within its keep-alive sends PINGREQ.", NotApplicable(CLIENT_ONLY)),
    s("MQTT-3.1.2-24", Server, "Hearing nothing for 1.5 times a non-zero keep-alive, the server disconnects the client as if the network had failed.", Covered),
    s("MQTT-3.1.3-1", Enforced, "Payload fields come in the order client id, will topic, will message, user name, password.", Covered),
    s("MQTT-3.1.3-2", Server, "The client id identifies the session state client and server hold.", Covered),
    s("MQTT-3.1.3-3", Enforced, "The client id is present and is the payload's first field.", Covered),
    s("MQTT-3.1.3-4", Enforced, "The client id is a UTF-8 string.", Covered),
    s(
        "MQTT-3.1.3-5",
        Server,
        "The server allows client ids of 1 to 23 bytes of 0-9, a-z, A-Z.",
        Different("the client id must be the thing name of the device whose certificate was presented (Greengrass admits devices so); any other id, however well-formed, gets CONNACK 0x02"),
    ),
    s("MQTT-3.1.3-6", Server, "A server may accept a zero-length client id; it then assigns a unique one.", Covered),
    s("MQTT-3.1.3-7", Client, "A client sending a zero-length client id sets CleanSession 1.", NotApplicable(CLIENT_ONLY)),
    s("MQTT-3.1.3-8", Server, "A zero-length client id with CleanSession 0 gets CONNACK 0x02 and the connection is closed.", Covered),
    s("MQTT-3.1.3-9", Server, "A rejected client id gets CONNACK 0x02 and the connection is closed.", Covered),
    s("MQTT-3.1.3-10", Enforced, "The will topic is a UTF-8 string.", Covered),
    s("MQTT-3.1.3-11", Enforced, "The user name is a UTF-8 string.", Covered),
    s("MQTT-3.1.4-1", Server, "A CONNECT that does not conform closes the connection without CONNACK.", Covered),
    s("MQTT-3.1.4-2", Server, "A CONNECT with the client id of a connected client disconnects the existing one.", Covered),
    s("MQTT-3.1.4-3", Server, "The server processes CleanSession as described.", Covered),
    s("MQTT-3.1.4-4", Server, "An accepted CONNECT gets CONNACK with return code 0.", Covered),
    s("MQTT-3.1.4-5", Server, "After rejecting a CONNECT, nothing the client sent after it is processed.", Covered),
    s("MQTT-3.2.0-1", Server, "The server's first packet is CONNACK.", Covered),
    s("MQTT-3.2.2-1", Server, "CleanSession 1 accepted: session present 0.", Covered),
    s("MQTT-3.2.2-2", Server, "CleanSession 0 accepted with a stored session: session present 1.", Covered),
    s("MQTT-3.2.2-3", Server, "CleanSession 0 accepted without a stored session: session present 0.", Covered),
    s("MQTT-3.2.2-4", Server, "A CONNACK with a non-zero return code has session present 0.", Covered),
    s("MQTT-3.2.2-5", Server, "After a CONNACK with a non-zero return code the connection is closed.", Covered),
    s("MQTT-3.2.2-6", Server, "When no return code applies, the connection is closed without CONNACK.", Covered),
    s("MQTT-3.3.1-1", Both, "DUP is 1 on a re-delivered PUBLISH.", Covered),
    s("MQTT-3.3.1-2", Both, "DUP is 0 on every QoS 0 PUBLISH.", Covered),
    s("MQTT-3.3.1-3", Server, "An outgoing DUP says only whether that PUBLISH is a retransmission, not what the incoming one said.", Covered),
    s("MQTT-3.3.1-4", Both, "A PUBLISH never has both QoS bits set; a receiver of one closes the connection.", Covered),
    s("MQTT-3.3.1-5", Server, "RETAIN 1 from a client: the message and its QoS are stored for future subscribers.", Different(NO_RETAIN)),
    s("MQTT-3.3.1-6", Server, "A new subscription gets the retained message of each matching topic.", Different(NO_RETAIN)),
    s("MQTT-3.3.1-7", Server, "A retained QoS 0 message replaces the retained message of its topic.", Different(NO_RETAIN)),
    s("MQTT-3.3.1-8", Server, "A message sent because of a new subscription has RETAIN 1.", Different(NO_RETAIN)),
    s("MQTT-3.3.1-9", Server, "A message sent on an established subscription has RETAIN 0, whatever the publisher set.", Covered),
    s("MQTT-3.3.1-10", Server, "A retained PUBLISH with an empty payload is delivered as usual and clears its topic's retained message.", Covered),
    s("MQTT-3.3.1-11", Server, "A zero-byte retained message is not stored.", Covered),
    s("MQTT-3.3.1-12", Server, "RETAIN 0: the message is not stored and no retained message is touched.", Covered),
    s("MQTT-3.3.2-1", Enforced, "The topic name is present, first in the variable header, and a UTF-8 string.", Covered),
    s("MQTT-3.3.2-2", Enforced, "A PUBLISH's topic name holds no wildcard.", Covered),
    s("MQTT-3.3.2-3", Server, "The topic of a PUBLISH sent to a subscriber matches its subscription's filter.", Covered),
    s("MQTT-3.3.4-1", Both, "A PUBLISH is answered as its QoS says: nothing, PUBACK or PUBREC.", Covered),
    s("MQTT-3.3.5-1", Server, "A message matching several subscriptions of a client is delivered respecting the highest of their QoS.", Covered),
    s("MQTT-3.3.5-2", Server, "A PUBLISH the server does not authorize is acknowledged as usual, or the connection is closed.", Covered),
    s("MQTT-3.6.1-1", Server, "PUBREL's header flags are 0010; others are malformed and close the connection.", Covered),
    s("MQTT-3.8.1-1", Server, "SUBSCRIBE's header flags are 0010; others are malformed and close the connection.", Covered),
    s("MQTT-3.8.3-1", Enforced, "SUBSCRIBE's topic filters are UTF-8 strings.", Covered),
    s("MQTT-3.8.3-2", Server, "A server without wildcard support refuses filters that hold wildcards.", Covered),
    s("MQTT-3.8.3-3", Enforced, "A SUBSCRIBE holds at least one filter; one without is a protocol violation.", Covered),
    s("MQTT-3-8.3-4", Server, "Non-zero reserved bits in a requested-QoS byte, or QoS 3, make a SUBSCRIBE malformed: the connection is closed.", Covered),
    s("MQTT-3.8.4-1", Server, "A SUBSCRIBE is answered with SUBACK.", Covered),
    s("MQTT-3.8.4-2", Server, "The SUBACK has the SUBSCRIBE's packet identifier.", Covered),
    s("MQTT-3.8.4-3", Server, "A filter identical to an existing subscription's replaces it, without interrupting the flow of messages.", Covered),
    s("MQTT-3.8.4-4", Server, "Several filters in one SUBSCRIBE are handled as a sequence of SUBSCRIBEs, answered by one SUBACK.", Covered),
    s("MQTT-3.8.4-5", Server, "The SUBACK has a return code per filter: the maximum QoS granted, or failure.", Covered),
    s("MQTT-3.8.4-6", Server, "Messages are delivered at the lower of the published and the granted QoS.", Covered),
    s("MQTT-3.9.3-1", Server, "SUBACK return codes follow the order of the SUBSCRIBE's filters.", Covered),
    s("MQTT-3.9.3-2", Server, "SUBACK return codes are 0x00, 0x01, 0x02 or 0x80 only.", Covered),
    s("MQTT-3.10.1-1", Server, "UNSUBSCRIBE's header flags are 0010; others are malformed and close the connection.", Covered),
    s("MQTT-3.10.3-1", Enforced, "UNSUBSCRIBE's topic filters are UTF-8 strings.", Covered),
    s("MQTT-3.10.3-2", Enforced, "An UNSUBSCRIBE holds at least one filter; one without is a protocol violation.", Covered),
    s("MQTT-3.10.4-1", Server, "UNSUBSCRIBE filters are compared character by character with the subscriptions; an exact match is deleted.", Covered),
    s("MQTT-3.10.4-2", Server, "Once unsubscribed, no new messages are added for delivery.", Covered),
    s("MQTT-3.10.4-3", Server, "QoS 1 and 2 messages whose delivery had started are completed.", Covered),
    s("MQTT-3.10.4-4", Server, "An UNSUBSCRIBE is answered with UNSUBACK with its packet identifier.", Covered),
    s("MQTT-3.10.4-5", Server, "The UNSUBACK is sent even when nothing was deleted.", Covered),
    s("MQTT-3.10.4-6", Server, "Several filters in one UNSUBSCRIBE are handled as a sequence, answered by one UNSUBACK.", Covered),
    s("MQTT-3.12.4-1", Server, "A PINGREQ is answered with PINGRESP.", Covered),
    s("MQTT-3.14.1-1", Server, "DISCONNECT's reserved bits must be zero, else the client is disconnected.", Covered),
    s("MQTT-3.14.4-1", Client, "After sending DISCONNECT the client closes the connection.", NotApplicable(CLIENT_ONLY)),
    s("MQTT-3.14.4-2", Client, "After sending DISCONNECT the client sends nothing more.", NotApplicable(CLIENT_ONLY)),
    s("MQTT-3.14.4-3", Server, "On DISCONNECT the will is discarded without being published.", Covered),
    s("MQTT-4.1.0-1", Both, "Session state is kept for as long as the session lasts.", Covered),
    s("MQTT-4.1.0-2", Both, "A session lasts at least as long as its network connection.", Covered),
    s("MQTT-4.3.1-1", Both, "A QoS 0 sender sends PUBLISH with QoS 0 and DUP 0.", Covered),
    s("MQTT-4.3.2-1", Both, "A QoS 1 sender uses an unused identifier, sends QoS 1 DUP 0, and holds the message unacknowledged until PUBACK.", Covered),
    s(
        "MQTT-4.3.2-2",
        Both,
        "A QoS 1 receiver answers PUBACK with the identifier once it owns the message; the same identifier is then a new publication.",
        Covered,
    ),
    s("MQTT-4.3.3-1", Both, "A QoS 2 sender sends QoS 2, holds it until PUBREC, then sends PUBREL until PUBCOMP.", Different(NO_QOS2_OUT)),
    s(
        "MQTT-4.3.3-2",
        Both,
        "A QoS 2 receiver answers PUBREC, acknowledges re-sent copies without passing them on again until PUBREL, answers PUBREL with PUBCOMP, and then treats the identifier as new.",
        Covered,
    ),
    s("MQTT-4.4.0-1", Both, "On reconnection with CleanSession 0, unacknowledged PUBLISH and PUBREL packets are re-sent with their identifiers.", Covered),
    s("MQTT-4.5.0-1", Server, "A message the server owns is added to the session of every client with a matching subscription.", Covered),
    s("MQTT-4.5.0-2", Client, "A client acknowledges every PUBLISH it receives as its QoS says.", NotApplicable(CLIENT_ONLY)),
    s("MQTT-4.6.0-1", Both, "PUBLISH packets are re-sent in the order first sent.", Covered),
    s("MQTT-4.6.0-2", Both, "PUBACKs go in the order their PUBLISH packets were received.", Covered),
    s("MQTT-4.6.0-3", Both, "PUBRECs go in the order their PUBLISH packets were received.", Covered),
    s("MQTT-4.6.0-4", Both, "PUBRELs go in the order their PUBRECs were received.", Different(NO_QOS2_OUT)),
    s("MQTT-4.6.0-5", Server, "Every topic is an ordered topic by default.", Covered),
    s("MQTT-4.6.0-6", Server, "On an ordered topic, a client's messages reach each subscriber in the order received (same topic and QoS).", Covered),
    s("MQTT-4.7.1-1", Enforced, "Wildcards are not used in topic names.", Covered),
    s("MQTT-4.7.1-2", Enforced, "'#' stands alone or after '/', as the filter's last character.", Different(BAD_FILTER)),
    s("MQTT-4.7.1-3", Enforced, "'+' fills a whole level of a filter.", Different(BAD_FILTER)),
    s("MQTT-4.7.2-1", Server, "Filters starting with a wildcard do not match topic names starting with '$'.", Covered),
    s(
        "MQTT-4.7.3-1",
        Both,
        "Topic names and filters are at least one character long.",
        Different("an empty topic name closes the connection, but an empty filter is refused with SUBACK 0x80, like every malformed filter"),
    ),
    s("MQTT-4.7.3-2", Both, "Topic names and filters hold no U+0000.", Covered),
    s("MQTT-4.7.3-3", Both, "Topic names and filters encode to at most 65,535 bytes.", Covered),
    s("MQTT-4.7.3-4", Server, "Matching neither normalizes names and filters nor replaces unrecognized characters.", Covered),
    s("MQTT-4.8.0-1", Both, "Unless stated otherwise, a protocol violation closes the connection it arrived on.", Covered),
    s("MQTT-4.8.0-2", Both, "A transient error (a full buffer, say) while processing an inbound packet closes the connection it arrived on.", Covered),
    s("MQTT-6.0.0-1", WebSocket, "Over WebSocket, packets travel in binary frames; other frames close the connection.", NotApplicable(NO_WEBSOCKET)),
    s("MQTT-6.0.0-2", WebSocket, "Over WebSocket, packets need not align with frames.", NotApplicable(NO_WEBSOCKET)),
    s("MQTT-6.0.0-3", WebSocket, "A WebSocket client offers the sub-protocol \"mqtt\".", NotApplicable(NO_WEBSOCKET)),
    s("MQTT-6.0.0-4", WebSocket, "A WebSocket server selects the sub-protocol \"mqtt\".", NotApplicable(NO_WEBSOCKET)),
    s(
        "MQTT-7.0.0-1",
        Server,
        "A server that also connects out to other servers conforms as a client as well.",
        NotApplicable("the MQTT server makes no outbound MQTT connections"),
    ),
    s("MQTT-7.0.0-2", Both, "A conformant implementation needs no extension to interoperate with another.", Covered),
    s("MQTT-7.1.1-1", Server, "The server supports a transport that carries an ordered, lossless byte stream both ways.", Covered),
    s("MQTT-7.1.2-1", Client, "The client supports such a transport.", NotApplicable(CLIENT_ONLY)),
];

/// Counts of the table, as docs/mqtt.md quotes them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub server: usize,
    pub covered: usize,
    pub different: usize,
    pub not_applicable: usize,
}

pub fn counts() -> Counts {
    let mut c = Counts { total: STATEMENTS.len(), ..Counts::default() };
    for s in STATEMENTS {
        if s.binds.binds_server() {
            c.server += 1;
        }
        match s.verdict {
            Covered => c.covered += 1,
            Different(_) => c.different += 1,
            NotApplicable(_) => c.not_applicable += 1,
        }
    }
    c
}

/// The case names that check each statement.
fn cases_by_statement(cases: &[Case]) -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in cases {
        for id in c.ids {
            by.entry(id).or_default().push(c.name);
        }
    }
    by
}

/// Panics unless the table, the cases and docs/mqtt.md agree (see the test
/// that calls it).
pub fn check(cases: &[Case]) {
    let ids: BTreeSet<&str> = STATEMENTS.iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), STATEMENTS.len(), "a statement is listed twice");
    assert_eq!(STATEMENTS.len(), 141, "MQTT 3.1.1 has 141 normative statements");
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "two cases share a name");
    let by = cases_by_statement(cases);
    let mut problems = Vec::new();
    for s in STATEMENTS {
        let checked = by.contains_key(s.id);
        match s.verdict {
            Covered | Different(_) if !s.binds.binds_server() => problems.push(format!("{} binds no server but has a verdict", s.id)),
            Covered | Different(_) if !checked => problems.push(format!("{} has no case", s.id)),
            NotApplicable(_) if checked => problems.push(format!("{} is not applicable but has a case", s.id)),
            NotApplicable(_) if s.binds.binds_server() && s.binds != Server => {
                problems.push(format!("{} binds the server but is not applicable", s.id))
            }
            _ => {}
        }
    }
    for id in by.keys() {
        if !id.starts_with("seq:") && !ids.contains(id) {
            problems.push(format!("a case names {id}, which is not in the table"));
        }
    }
    let docs_path = crate::common::process::tests_dir().join("../docs/mqtt.md");
    let docs = std::fs::read_to_string(&docs_path).unwrap_or_else(|e| {
        problems.push(format!("cannot read {}: {e}", docs_path.display()));
        String::new()
    });
    let listed = docs_sections(&docs);
    for s in STATEMENTS {
        let want = match s.verdict {
            Covered => "covered",
            Different(_) => "different",
            NotApplicable(_) => "not applicable",
        };
        match listed.get(s.id) {
            None => problems.push(format!("docs/mqtt.md does not list {}", s.id)),
            Some((section, line)) => {
                if *section != want {
                    problems.push(format!("docs/mqtt.md lists {} as {section}, the table says {want}", s.id));
                }
                for name in by.get(s.id).into_iter().flatten() {
                    if !line.contains(name) {
                        problems.push(format!("docs/mqtt.md's line for {} does not name its case {name}", s.id));
                    }
                }
            }
        }
    }
    let c = counts();
    let summary =
        format!("{} of the {} statements that bind a server are covered, {} are deliberately different", c.covered, c.server, c.different);
    if !docs.contains(&summary) {
        problems.push(format!("docs/mqtt.md does not say \"{summary}\""));
    }
    assert!(problems.is_empty(), "{} problem(s):\n  {}\n\n{}", problems.len(), problems.join("\n  "), render(cases));
}

/// For each statement id listed in the conformance tables of docs/mqtt.md,
/// the section it is listed in ("covered", "different", "not applicable")
/// and its table row.
fn docs_sections(docs: &str) -> BTreeMap<String, (&'static str, String)> {
    let mut out = BTreeMap::new();
    let mut section = None;
    for line in docs.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            let h = h.to_lowercase();
            section = if h.starts_with("covered") {
                Some("covered")
            } else if h.starts_with("deliberately different") {
                Some("different")
            } else if h.starts_with("not applicable") {
                Some("not applicable")
            } else {
                None
            };
            continue;
        }
        let (Some(sec), Some(rest)) = (section, line.strip_prefix("| `")) else { continue };
        if let Some((id, _)) = rest.split_once('`') {
            out.insert(id.to_string(), (sec, line.to_string()));
        }
    }
    out
}

/// The conformance tables of docs/mqtt.md, rendered from the table and the
/// cases (printed when they disagree, to be pasted in).
pub fn render(cases: &[Case]) -> String {
    let by = cases_by_statement(cases);
    let c = counts();
    let server_na = c.server - c.covered - c.different;
    let mut out = format!(
        "{} of the {} statements that bind a server are covered, {} are deliberately different and {server_na} is not applicable; \
         the other {} of the {} statements bind only the client or the WebSocket transport, which ggcore does not serve.\n",
        c.covered,
        c.server,
        c.different,
        c.total - c.server,
        c.total
    );
    let binds = |b: Binds| match b {
        Server => "server",
        Both => "both",
        Enforced => "client, refused by the server",
        Client => "client",
        WebSocket => "WebSocket",
    };
    let tests = |id: &str| by.get(id).map(|v| v.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")).unwrap_or_default();
    out += "\n### Covered\n\n| Statement | Binds | Requires | Checked by |\n|---|---|---|---|\n";
    for s in STATEMENTS.iter().filter(|s| s.verdict == Covered) {
        out += &format!("| `{}` | {} | {} | {} |\n", s.id, binds(s.binds), s.text, tests(s.id));
    }
    out += "\n### Deliberately different\n\n| Statement | Requires | What ggcore does instead, and why | Checked by |\n|---|---|---|---|\n";
    for s in STATEMENTS {
        if let Different(why) = s.verdict {
            out += &format!("| `{}` | {} | {} | {} |\n", s.id, s.text, why, tests(s.id));
        }
    }
    out += "\n### Not applicable\n\n| Statement | Requires | Why |\n|---|---|---|\n";
    for s in STATEMENTS {
        if let NotApplicable(why) = s.verdict {
            out += &format!("| `{}` | {} | {} |\n", s.id, s.text, why);
        }
    }
    out
}
