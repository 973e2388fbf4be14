//! Witness policies (C2SP `tlog-policy`): which witnesses cosign a log's
//! checkpoints, where to reach them, and which of them must have cosigned a
//! checkpoint before it is trusted.
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> <threshold|all|any> <member>...
//! quorum <name|none>
//! ```
//!
//! Members are witnesses or groups named on earlier lines; `#` starts a comment.

use std::collections::HashMap;

use super::note::{Note, VerifierKey, TYPE_COSIGNATURE_V1};

/// Lines a policy may have.
const MAX_LINES: usize = 1000;

/// A witness of the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWitness {
    pub name: String,
    pub key: VerifierKey,
    /// Where the log submits checkpoints (`…/add-checkpoint` below it).
    pub url: Option<String>,
}

/// A member of a group: a witness or an earlier group, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    name: String,
    threshold: usize,
    members: Vec<Member>,
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub logs: Vec<(VerifierKey, Option<String>)>,
    pub witnesses: Vec<PolicyWitness>,
    groups: Vec<Group>,
    /// `None`: no cosignature is required.
    quorum: Option<Member>,
}

impl Policy {
    /// Reads a policy; an error names the line.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let mut policy = Policy {
            logs: Vec::new(),
            witnesses: Vec::new(),
            groups: Vec::new(),
            quorum: None,
        };
        let mut names: HashMap<String, Member> = HashMap::new();
        let mut quorum_seen = false;
        for (n, raw) in text.lines().enumerate() {
            if n >= MAX_LINES {
                return Err(format!("a policy has at most {MAX_LINES} lines"));
            }
            let at = |why: String| format!("line {}: {why}", n + 1);
            let line = raw.split('#').next().unwrap_or_default().trim();
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["log", key, rest @ ..] if rest.len() <= 1 => {
                    let key = VerifierKey::parse(key).map_err(at)?;
                    policy.logs.push((key, rest.first().map(|u| (*u).to_owned())));
                }
                ["witness", name, key, rest @ ..] if rest.len() <= 1 => {
                    if names.contains_key(*name) {
                        return Err(at(format!("`{name}` is named twice")));
                    }
                    let key = VerifierKey::parse(key).map_err(at)?;
                    if key.kind != TYPE_COSIGNATURE_V1 {
                        return Err(at(format!("the key of witness `{name}` is not a cosignature key")));
                    }
                    names.insert((*name).to_owned(), Member::Witness(policy.witnesses.len()));
                    policy.witnesses.push(PolicyWitness {
                        name: (*name).to_owned(),
                        key,
                        url: rest.first().map(|u| (*u).to_owned()),
                    });
                }
                ["group", name, threshold, members @ ..] if !members.is_empty() => {
                    if names.contains_key(*name) {
                        return Err(at(format!("`{name}` is named twice")));
                    }
                    let members = members
                        .iter()
                        .map(|m| {
                            names
                                .get(*m)
                                .copied()
                                .ok_or_else(|| at(format!("`{m}` is not a witness or group named above")))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let threshold = match *threshold {
                        "all" => members.len(),
                        "any" => 1,
                        n => n
                            .parse::<usize>()
                            .ok()
                            .filter(|t| (1..=members.len()).contains(t))
                            .ok_or_else(|| {
                                at(format!("the threshold `{n}` is not all, any or 1 to {}", members.len()))
                            })?,
                    };
                    names.insert((*name).to_owned(), Member::Group(policy.groups.len()));
                    policy.groups.push(Group {
                        name: (*name).to_owned(),
                        threshold,
                        members,
                    });
                }
                ["quorum", name] => {
                    if quorum_seen {
                        return Err(at("the quorum is named twice".into()));
                    }
                    quorum_seen = true;
                    policy.quorum = match *name {
                        "none" => None,
                        name => Some(
                            names
                                .get(name)
                                .copied()
                                .ok_or_else(|| at(format!("`{name}` is not a witness or group named above")))?,
                        ),
                    };
                }
                _ => return Err(at(format!("`{line}` is not a log, witness, group or quorum line"))),
            }
        }
        if !quorum_seen {
            return Err("the policy names no quorum (`quorum <name>` or `quorum none`)".into());
        }
        Ok(policy)
    }

    /// Whether any cosignature is required.
    pub fn requires_cosignatures(&self) -> bool {
        self.quorum.is_some()
    }

    /// The time each witness's cosignature of `note` carries, where one verifies.
    pub fn cosigned(&self, note: &Note) -> Vec<Option<u64>> {
        self.witnesses
            .iter()
            .map(|w| note.verified_by(&w.key).flatten())
            .collect()
    }

    /// Whether the witnesses marked in `counts` (by index) meet the quorum.
    pub fn met_by(&self, counts: &[bool]) -> bool {
        match self.quorum {
            None => true,
            Some(member) => self.satisfied(member, counts),
        }
    }

    /// Whether the cosignatures of `note` that verify meet the quorum, whatever
    /// their age.
    pub fn met_in(&self, note: &Note) -> bool {
        self.met_by(&self.cosigned(note).iter().map(Option::is_some).collect::<Vec<_>>())
    }

    fn satisfied(&self, member: Member, counts: &[bool]) -> bool {
        match member {
            Member::Witness(i) => counts.get(i).copied().unwrap_or(false),
            Member::Group(g) => {
                let group = &self.groups[g];
                group.members.iter().filter(|m| self.satisfied(**m, counts)).count() >= group.threshold
            }
        }
    }

    /// Checks that the cosignature `lines` of the checkpoint `body` meet the quorum,
    /// counting only those that verify and whose time is neither later than `now`
    /// (a minute's skew allowed) nor older than `max_age` seconds. The refusal names
    /// the quorum, who cosigned and why each other witness does not count.
    pub fn check(&self, body: &str, lines: &[String], now: u64, max_age: u64) -> Result<(), String> {
        let mut note = Note {
            text: body.to_owned(),
            signatures: Vec::new(),
        };
        for line in lines {
            if let Ok(signature) = super::note::NoteSignature::parse(line.trim_end()) {
                note.add(signature);
            }
        }
        self.check_note(&note, now, max_age)
    }

    /// [`Policy::check`] of a signed note's own cosignatures.
    pub fn check_note(&self, note: &Note, now: u64, max_age: u64) -> Result<(), String> {
        if !self.requires_cosignatures() {
            return Ok(());
        }
        let mut counted = Vec::with_capacity(self.witnesses.len());
        let mut missing = Vec::new();
        for (witness, time) in self.witnesses.iter().zip(self.cosigned(note)) {
            let why = match time {
                None => Some("no cosignature"),
                Some(t) if t > now.saturating_add(60) => Some("a cosignature dated in the future"),
                Some(t) if now.saturating_sub(t) > max_age => Some("a cosignature too old"),
                Some(_) => None,
            };
            counted.push(why.is_none());
            if let Some(why) = why {
                missing.push(format!("{}: {why}", witness.name));
            }
        }
        if self.met_by(&counted) {
            return Ok(());
        }
        let cosigned: Vec<&str> = self
            .witnesses
            .iter()
            .zip(&counted)
            .filter(|(_, c)| **c)
            .map(|(w, _)| w.name.as_str())
            .collect();
        Err(format!(
            "the witnesses' quorum `{}` is not met: cosigned by {}; {}",
            self.quorum_name(),
            if cosigned.is_empty() {
                "none".to_owned()
            } else {
                cosigned.join(", ")
            },
            missing.join("; ")
        ))
    }

    /// The names of the groups and witnesses the quorum is made of, for messages.
    pub fn quorum_name(&self) -> &str {
        match self.quorum {
            None => "none",
            Some(Member::Witness(i)) => &self.witnesses[i].name,
            Some(Member::Group(g)) => &self.groups[g].name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::note::NoteSigner;

    fn witness(n: u8) -> NoteSigner {
        NoteSigner::from_seed(&format!("w{n}.example"), TYPE_COSIGNATURE_V1, &[n; 32]).unwrap()
    }

    fn policy() -> (Policy, Vec<NoteSigner>) {
        let ws: Vec<NoteSigner> = (1..=3).map(witness).collect();
        let text = format!(
            "# three witnesses, any two\n\
             witness w1 {} http://127.0.0.1:1\n\
             witness w2 {}\n\
             witness w3 {} http://127.0.0.1:3\n\
             group two-of-three 2 w1 w2 w3\n\
             quorum two-of-three\n",
            ws[0].verifier(),
            ws[1].verifier(),
            ws[2].verifier()
        );
        (Policy::parse(&text).unwrap(), ws)
    }

    #[test]
    fn a_quorum_counts_the_cosignatures_that_verify() {
        let (policy, ws) = policy();
        assert_eq!(policy.witnesses.len(), 3);
        assert_eq!(policy.witnesses[0].url.as_deref(), Some("http://127.0.0.1:1"));
        let body = "example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let mut note = Note {
            text: body.into(),
            signatures: vec![ws[0].cosign(body, 10)],
        };
        let cosigned: Vec<bool> = policy.cosigned(&note).iter().map(Option::is_some).collect();
        assert!(!policy.met_by(&cosigned), "one of three");
        note.add(ws[2].cosign(body, 11));
        let times = policy.cosigned(&note);
        assert_eq!(times, vec![Some(10), None, Some(11)]);
        assert!(policy.met_by(&times.iter().map(Option::is_some).collect::<Vec<_>>()));
        // A cosignature of another checkpoint does not count.
        let other = Note {
            text: body.replace('5', "6"),
            signatures: vec![ws[1].cosign(body, 12)],
        };
        assert_eq!(policy.cosigned(&other), vec![None, None, None]);
    }

    #[test]
    fn a_quorum_check_counts_fresh_cosignatures_and_names_what_is_missing() {
        let (policy, ws) = policy();
        let body = "example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let now = 1_000_000;
        let lines = |times: &[(usize, u64)]| -> Vec<String> {
            times.iter().map(|(w, t)| ws[*w].cosign(body, *t).line()).collect()
        };
        assert!(policy
            .check(body, &lines(&[(0, now - 10), (1, now)]), now, 3600)
            .is_ok());
        let err = policy
            .check(body, &lines(&[(0, now - 10), (1, now - 7200)]), now, 3600)
            .unwrap_err();
        assert!(
            err.contains("`two-of-three`") && err.contains("cosigned by w1"),
            "{err}"
        );
        assert!(
            err.contains("w2: a cosignature too old") && err.contains("w3: no cosignature"),
            "{err}"
        );
        let err = policy
            .check(body, &lines(&[(0, now), (2, now + 3600)]), now, 3600)
            .unwrap_err();
        assert!(err.contains("w3: a cosignature dated in the future"), "{err}");
        assert!(Policy::parse("quorum none").unwrap().check(body, &[], now, 1).is_ok());
    }

    #[test]
    fn policy_mistakes_name_their_line() {
        let w = witness(1).verifier().to_string();
        let log = NoteSigner::from_seed("log", 1, &[1; 32])
            .unwrap()
            .verifier()
            .to_string();
        for (text, why) in [
            (
                format!("witness a {w}\ngroup g 2 a\nquorum g"),
                "line 2: the threshold `2`",
            ),
            (format!("witness a {w}\nquorum b"), "line 2: `b` is not"),
            (
                format!("witness a {w}\nwitness a {w}\nquorum a"),
                "line 2: `a` is named twice",
            ),
            (
                format!("witness a {log}\nquorum a"),
                "line 1: the key of witness `a` is not a cosignature key",
            ),
            (format!("witness a {w}"), "names no quorum"),
            ("frobnicate\nquorum none".to_owned(), "line 1: `frobnicate` is not"),
        ] {
            let err = Policy::parse(&text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        assert!(!Policy::parse("quorum none").unwrap().requires_cosignatures());
    }
}
