//! The one way a file comes in ([`Store::offer`]) and the version rule, decided here only.
//!
//! A file is verified once (signature, contract), then held to the version rule of its
//! [`Channel`]: the watch dir must bring a version above the one serving (a replayed old file
//! must not win); the control plane may also send the node back to a version this node served
//! before (a rollout rolling back), proven by its digest in last-known-good or the archive.
//! What follows verification (poisoned list, compile, journal, swap) is shared with boot and
//! break glass.

use std::sync::Arc;

use rampart_artifact::{Issue, Validated, check};

use crate::archive;
use crate::compiler::Compiler;
use crate::outcome::{ApplyOutcome, Rejection};
use crate::sentinel::Event;
use crate::snapshot::{Active, Channel};
use crate::soak::Soak;

use super::{Candidate, Held, Store, Writer, kept, unchanged};

/// Which versions a channel may bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionRule {
    /// Only above the version serving.
    Newer,
    /// Above the version serving, or below it when this node served that very file.
    ServedBefore,
}

/// What the version rule lets a verified file do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Forward: a version above the one serving (or the first one).
    Forward,
    /// The document serving, in other bytes (signed again): nothing to do.
    Same,
    /// Back from version `from` to a version served before; `soaked` when it is
    /// last-known-good.
    Back { from: u64, soaked: bool },
}

// === impl VersionRule ===

impl VersionRule {
    /// Only the control plane may go back: it rolls a rollout back with the file the node
    /// served before. A file dropped in the watch dir has no such authority.
    fn of(channel: Channel) -> Self {
        match channel {
            Channel::Control => VersionRule::ServedBefore,
            Channel::Watch | Channel::Boot | Channel::LastKnownGood | Channel::Pinned => {
                VersionRule::Newer
            }
        }
    }
}

// === impl Store ===

impl<C: Compiler> Store<C> {
    /// [`Store::offer`] under the lock: the outcome, and the file's version when known (for
    /// the rejection record).
    pub(super) fn offer_locked(
        &self,
        w: &mut Writer,
        bytes: &[u8],
        channel: Channel,
        now_ms: u64,
    ) -> (ApplyOutcome, Option<u64>) {
        if let Some(pinned) = w.pinned {
            return refuse(w, Rejection::Pinned { pinned }, None);
        }
        if let Some(held) = &w.active
            && *held.bytes == *bytes
        {
            // The exact bytes already verified: the watcher re-reading the same file.
            return (unchanged(held), Some(held.validated.version()));
        }
        let rule = VersionRule::of(channel);
        // The watch dir's bound goes into the check, so a refused file lists every issue at
        // once, its version among them. The control plane's is decided after verification:
        // a lower version is an issue only when this node never served that file.
        let bound = match rule {
            VersionRule::Newer => w.active.as_ref().map(|h| h.validated.document()),
            VersionRule::ServedBefore => None,
        };
        let keyring = self.keyring.load();
        let validated = match check(bytes, &self.policy(&keyring, bound)) {
            Ok(checked) => checked.validated,
            Err(issues) => {
                // Only the bound failed, at the version serving: the rule below tells the
                // same document signed again (not a regression) from another file.
                let at_serving = matches!(
                    issues.as_slice(),
                    [Issue::VersionNotAbove { version, previous }] if version == previous
                );
                match at_serving.then(|| check(bytes, &self.policy(&keyring, None))) {
                    Some(Ok(checked)) => checked.validated,
                    _ => {
                        let version = issues.iter().find_map(|i| match i {
                            Issue::VersionNotAbove { version, .. } => Some(*version),
                            _ => None,
                        });
                        return refuse(w, Rejection::Invalid(issues), version);
                    }
                }
            }
        };
        let version = validated.version();
        let step = match self.step(w, &validated, rule) {
            Ok(step) => step,
            Err(issue) => return refuse(w, Rejection::Invalid(vec![issue]), Some(version)),
        };
        let soaked = match step {
            Step::Forward => false,
            Step::Back { soaked, .. } => soaked,
            Step::Same => {
                let digest = validated.digest();
                return (ApplyOutcome::Unchanged { version, digest }, Some(version));
            }
        };
        match self.activate_checked(w, validated, bytes.to_vec(), channel, now_ms, soaked) {
            Ok(outcome) => {
                if matches!(outcome, ApplyOutcome::Applied { .. }) {
                    if let Step::Back { from, .. } = step {
                        // Served before: archived or last-known-good already.
                        tracing::warn!(version, from, "rolled back to a version served before");
                    } else if let Err(e) =
                        archive::store(&self.layout, version, bytes, self.config.archive_len)
                    {
                        self.disk_failed(w, "archive", &e, now_ms);
                    }
                }
                (outcome, Some(version))
            }
            Err((rejection, v)) => refuse(w, rejection, v),
        }
    }

    /// The version rule: what a verified file may do against the version serving, or the
    /// issue that refuses it.
    fn step(&self, w: &Writer, validated: &Validated, rule: VersionRule) -> Result<Step, Issue> {
        let Some(held) = &w.active else {
            return Ok(Step::Forward);
        };
        let (version, serving) = (validated.version(), held.validated.version());
        if version > serving {
            return Ok(Step::Forward);
        }
        let digest = validated.digest();
        if digest == held.validated.digest() {
            return Ok(Step::Same);
        }
        if rule == VersionRule::ServedBefore && version < serving {
            if w.lkg.contains(&digest) {
                return Ok(Step::Back {
                    from: serving,
                    soaked: true,
                });
            }
            let archived = matches!(
                self.candidate(&self.layout.version_file(version), Some(version)),
                Candidate::Good(archived, _) if archived.digest() == digest
            );
            if archived {
                return Ok(Step::Back {
                    from: serving,
                    soaked: false,
                });
            }
            // Never served here: an old file replayed, not a rollback this node can vouch for.
        }
        Err(Issue::VersionNotAbove {
            version,
            previous: serving,
        })
    }

    /// The steps after verification: poisoned, same digest, compile, swap. `soaked` when
    /// the file is known good (last-known-good), so no new soak is due.
    pub(super) fn activate_checked(
        &self,
        w: &mut Writer,
        validated: Validated,
        bytes: Vec<u8>,
        channel: Channel,
        now_ms: u64,
        soaked: bool,
    ) -> Result<ApplyOutcome, (Rejection, Option<u64>)> {
        let version = validated.version();
        if w.poisoned.iter().any(|p| p.version == version) {
            return Err((Rejection::Poisoned { version }, Some(version)));
        }
        if let Some(held) = &w.active
            && held.validated.digest() == validated.digest()
        {
            return Ok(unchanged(held));
        }
        let model = self
            .compile(&validated)
            .map_err(|message| (Rejection::Compile(message), Some(version)))?;
        let digest = validated.digest();
        // Journal first: a death right after the swap is blamed on the new version.
        self.journal(
            w,
            Event::Activated {
                at_ms: now_ms,
                version,
                digest,
            },
            now_ms,
        );
        let active = Active {
            version,
            digest,
            model: Arc::new(model),
            channel,
            activated_at_ms: now_ms,
        };
        let next = self.shared.current.load().with_active(Some(active));
        self.shared.current.store(Arc::new(next));
        w.active = Some(Held {
            validated,
            bytes: Arc::from(bytes),
        });
        self.shared.meter.reset();
        let done = soaked || w.lkg.contains(&digest);
        w.soak = Some(Soak::start(version, digest, now_ms, done));
        Ok(ApplyOutcome::Applied { version, digest })
    }

    /// Compiles with the compiler's panics caught: a compiler bug rejects one file instead
    /// of killing the thread that applies files.
    fn compile(&self, validated: &Validated) -> Result<C::Model, String> {
        match crate::isolation::catch(|| self.compiler.compile(validated)) {
            Ok(Ok(model)) => Ok(model),
            Ok(Err(e)) => Err(e.to_string()),
            Err(payload) => {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".to_owned());
                Err(format!("the compiler panicked: {what}"))
            }
        }
    }
}

fn refuse(w: &Writer, rejection: Rejection, version: Option<u64>) -> (ApplyOutcome, Option<u64>) {
    (
        ApplyOutcome::Rejected {
            kept: kept(w),
            rejection,
        },
        version,
    )
}
