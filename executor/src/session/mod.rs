//! The protocol session: subscribes, resubscribes after disconnections, turns events into
//! task actions and task events into UPDATE calls, and decides when the executor exits.
//!
//! One tokio task owns all state ([`Session`]); connections and runners talk to it over
//! channels, so there are no locks.

pub mod connection;
pub mod launcher;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use crate::mesos::call::{Call, Subscribe, Update};
use crate::mesos::env::ExecutorEnv;
use crate::mesos::event::{Event, Subscribed};
use crate::mesos::http::{AgentClient, AgentClientError};
use crate::mesos::kill;
use crate::mesos::types::{
    ContainerStatus, FrameworkInfo, Id, IpAddress, KillPolicy, NetworkInfo, Reason, TaskInfo,
    TaskState, TaskStatus,
};
use crate::mesos::updates::{stamp, UpdateStore};
use connection::{error_chain, ConnMsg};
pub use launcher::{LaunchRequest, Launcher, TaskEvent};

/// Why a SUBSCRIBED is not for this executor (its ids are not ours), if it is not.
fn foreign(sub: &Subscribed, executor_id: &Id, framework_id: &Id) -> Option<String> {
    let info = &sub.executor_info;
    if info.executor_id != *executor_id {
        return Some(format!(
            "SUBSCRIBED names executor {:?}, not this executor {:?} (MESOS_EXECUTOR_ID)",
            info.executor_id.value, executor_id.value
        ));
    }
    match &info.framework_id {
        Some(f) if f != framework_id => Some(format!(
            "SUBSCRIBED names framework {:?}, not this executor's {:?} (MESOS_FRAMEWORK_ID)",
            f.value, framework_id.value
        )),
        _ => None,
    }
}

/// How the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Every task ended and the agent acknowledged every terminal update.
    Done,
    /// SHUTDOWN (or a signal): tasks were killed.
    Shutdown,
    /// The agent stayed away longer than allowed.
    AgentLost(String),
    /// The agent refused the subscription for good.
    Refused(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot write the session checkpoint {path}")]
    Checkpoint {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("cannot set up the connection to the agent")]
    Agent(#[source] AgentClientError),
}

struct Live {
    kill: watch::Sender<Option<Instant>>,
    policy: Option<KillPolicy>,
    killing_sent: bool,
}

/// The session's state.
pub struct Session {
    env: ExecutorEnv,
    agent: AgentClient,
    executor_id: Id,
    framework_id: Id,
    launcher: Arc<dyn Launcher>,
    store: UpdateStore,
    checkpoint: Option<PathBuf>,
    live: HashMap<String, Live>,
    framework: FrameworkInfo,
    connected: bool,
    gen: u64,
    disconnected_since: Option<Instant>,
    reconnect_at: Option<Instant>,
    /// Set once the executor is going away; it exits at this instant at the latest.
    leaving: Option<(Instant, Exit)>,
    /// The shutdown grace period ran out: exit now.
    forced: Option<Exit>,
    /// When to post the unacknowledged updates again (same uuid) while subscribed: an
    /// UPDATE whose POST failed, or whose acknowledgement got lost, on a stream that
    /// stays open would otherwise wait for a resubscription that may never come.
    retry_at: Option<Instant>,
    conn_tx: mpsc::UnboundedSender<ConnMsg>,
    task_tx: mpsc::UnboundedSender<TaskEvent>,
    send_tx: mpsc::UnboundedSender<(u64, Vec<u8>)>,
    /// The generation of the subscribed connection, 0 while disconnected: the sender drops
    /// queued UPDATEs of a connection that is gone (the next SUBSCRIBE carries them).
    live_gen: Arc<AtomicU64>,
    /// A SUBSCRIBE is on its way (no answer yet).
    subscribing: bool,
    /// The uuids of the updates the pending or current SUBSCRIBE carried.
    carried: HashSet<Vec<u8>>,
}

/// The set key of an update's uuid.
fn uuid_key(u: &crate::mesos::json::Bytes) -> Vec<u8> {
    u.0.clone()
}

/// A random delay in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    let r = u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .unwrap_or([0; 8]),
    );
    max.mul_f64((r >> 11) as f64 / (1u64 << 53) as f64)
}

impl Session {
    /// Runs until the executor should exit. `checkpoint` is the session file (update store)
    /// used to recover after an executor crash; `stop` fires on SIGTERM/SIGINT.
    pub async fn run(
        env: ExecutorEnv,
        launcher: Arc<dyn Launcher>,
        checkpoint: Option<PathBuf>,
        mut stop: mpsc::Receiver<()>,
    ) -> Result<Exit, SessionError> {
        if let Some(path) = std::env::var_os("MESOS_DOMAIN_SOCKET") {
            // The agent (--http_executor_domain_sockets) still serves the executor API
            // on its TCP endpoint too; berth speaks HTTP over TCP only.
            tracing::info!(
                socket = %path.to_string_lossy(),
                endpoint = %env.agent_endpoint,
                "MESOS_DOMAIN_SOCKET is set; using TCP to MESOS_AGENT_ENDPOINT instead"
            );
        }
        let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
        let (task_tx, mut task_rx) = mpsc::unbounded_channel();
        let (send_tx, send_rx) = mpsc::unbounded_channel();
        let live_gen = Arc::new(AtomicU64::new(0));
        let agent = AgentClient::new(&env).map_err(SessionError::Agent)?;
        tokio::spawn(sender(agent.clone(), send_rx, live_gen.clone()));
        let store = checkpoint
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<UpdateStore>(&b).ok())
            .unwrap_or_default();
        let mut s = Session {
            agent,
            executor_id: Id::new(env.executor_id.clone()),
            framework_id: Id::new(env.framework_id.clone()),
            env,
            launcher,
            store,
            checkpoint,
            live: HashMap::new(),
            framework: FrameworkInfo::default(),
            connected: false,
            gen: 0,
            disconnected_since: Some(Instant::now()),
            reconnect_at: None,
            leaving: None,
            forced: None,
            retry_at: None,
            conn_tx,
            task_tx,
            send_tx,
            live_gen,
            subscribing: false,
            carried: HashSet::new(),
        };
        s.recover_tasks();
        s.subscribe();
        let mut stop_open = true;
        loop {
            if let Some(exit) = s.finished() {
                return Ok(exit);
            }
            let wake = s.next_wake();
            tokio::select! {
                Some(msg) = conn_rx.recv() => s.on_conn(msg)?,
                Some(ev) = task_rx.recv() => s.on_task_event(ev)?,
                r = stop.recv(), if stop_open => {
                    if r.is_none() { stop_open = false; continue; }
                    tracing::info!("signal received: killing tasks and shutting down");
                    s.shutdown(Exit::Shutdown);
                }
                _ = sleep_until(wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if wake.is_some() => s.on_timer(),
            }
        }
    }

    fn persist(&self) -> Result<(), SessionError> {
        let Some(path) = &self.checkpoint else {
            return Ok(());
        };
        let err = |err| SessionError::Checkpoint {
            path: path.clone(),
            err,
        };
        let tmp = path.with_extension("tmp");
        let data = serde_json::to_vec(&self.store).map_err(|e| err(e.into()))?;
        std::fs::write(&tmp, data).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// After an executor restart: every task whose last update was not terminal is handed
    /// back to the launcher, which re-attaches to or cleans up its container.
    fn recover_tasks(&mut self) {
        for id in self.store.live_tasks() {
            let Some(rec) = self.store.task(&id) else {
                continue;
            };
            match serde_json::from_value::<TaskInfo>(rec.raw.clone()) {
                Ok(task) => {
                    tracing::info!(task = %id, "recovering task from the checkpoint");
                    self.start(task, true);
                }
                Err(e) => tracing::error!(task = %id, error = %e, "checkpointed task unreadable"),
            }
        }
    }

    fn start(&mut self, task: TaskInfo, recover: bool) {
        let (kill_tx, kill_rx) = watch::channel(None);
        self.live.insert(
            task.task_id.value.clone(),
            Live {
                kill: kill_tx,
                policy: task.kill_policy,
                killing_sent: false,
            },
        );
        self.launcher.launch(LaunchRequest {
            framework: self.framework.clone(),
            env: self.env.task_vars().clone(),
            sandbox: self.env.directory.clone(),
            events: self.task_tx.clone(),
            kill: kill_rx,
            recover,
            task,
        });
    }

    fn subscribe(&mut self) {
        self.gen += 1;
        self.reconnect_at = None;
        self.subscribing = true;
        self.carried = self
            .store
            .unacknowledged_updates()
            .iter()
            .filter_map(|s| s.uuid.as_ref().map(uuid_key))
            .collect();
        let call = Call::subscribe(
            &self.executor_id,
            &self.framework_id,
            Subscribe {
                unacknowledged_tasks: self.store.unacknowledged_tasks(),
                unacknowledged_updates: self
                    .store
                    .unacknowledged_updates()
                    .iter()
                    .map(|s| Update { status: s.clone() })
                    .collect(),
            },
        );
        let body = serde_json::to_vec(&call).unwrap_or_default();
        tracing::debug!(gen = self.gen, "subscribing");
        tokio::spawn(connection::subscribe(
            self.gen,
            self.agent.clone(),
            self.env.link,
            body,
            self.conn_tx.clone(),
        ));
    }

    fn next_wake(&self) -> Option<Instant> {
        let retry = self
            .retry_at
            .filter(|_| self.connected && !self.store.unacknowledged_updates().is_empty());
        let mut t = [self.reconnect_at, self.leaving.as_ref().map(|l| l.0), retry]
            .into_iter()
            .flatten()
            .min();
        if let (Some(since), None) = (self.disconnected_since, &self.leaving) {
            if self.env.checkpoint {
                let give_up = since + self.env.recovery_timeout;
                t = Some(t.map_or(give_up, |t| t.min(give_up)));
            }
        }
        t
    }

    fn finished(&self) -> Option<Exit> {
        if let Some(e) = &self.forced {
            return Some(e.clone());
        }
        if self.store.all_done() && self.live.is_empty() {
            return Some(
                self.leaving
                    .as_ref()
                    .map(|l| l.1.clone())
                    .unwrap_or(Exit::Done),
            );
        }
        if let Some((_, exit)) = &self.leaving {
            // Shutting down with nothing live and nothing to deliver (e.g. SHUTDOWN
            // before any LAUNCH): no reason to wait for the grace period.
            if self.live.is_empty() && self.store.unacknowledged_updates().is_empty() {
                return Some(exit.clone());
            }
            // Without an agent nobody will acknowledge: leave when the tasks are gone.
            if !self.connected
                && self.live.is_empty()
                && matches!(exit, Exit::AgentLost(_) | Exit::Refused(_))
            {
                return Some(exit.clone());
            }
        }
        None
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.connected && self.retry_at.is_some_and(|at| now >= at) {
            self.resend_unacknowledged(now);
        }
        if let Some((at, exit)) = &self.leaving {
            if now >= *at {
                tracing::warn!("shutdown grace period over; exiting");
                self.forced = Some(exit.clone());
                return;
            }
        }
        if let (Some(since), true, None) =
            (self.disconnected_since, self.env.checkpoint, &self.leaving)
        {
            if now >= since + self.env.recovery_timeout {
                let why = format!(
                    "agent unreachable for {:?} (MESOS_RECOVERY_TIMEOUT)",
                    self.env.recovery_timeout
                );
                tracing::error!("{why}; shutting down");
                self.shutdown(Exit::AgentLost(why));
                return;
            }
        }
        if self.reconnect_at.is_some_and(|t| now >= t) {
            self.subscribe();
        }
    }

    fn on_conn(&mut self, msg: ConnMsg) -> Result<(), SessionError> {
        match msg {
            ConnMsg::Event(gen, ev) if gen == self.gen => self.on_event(ev)?,
            ConnMsg::Closed(gen, why) if gen == self.gen => self.disconnected(why, true),
            ConnMsg::Failed { gen, retry, why } if gen == self.gen => self.disconnected(why, retry),
            _ => {}
        }
        Ok(())
    }

    fn disconnected(&mut self, why: String, retry: bool) {
        let was = self.connected;
        self.connected = false;
        self.subscribing = false;
        self.live_gen.store(0, Ordering::SeqCst);
        if was {
            tracing::warn!(%why, "disconnected from the agent");
            self.disconnected_since = Some(Instant::now());
        } else {
            tracing::debug!(%why, "subscription attempt failed");
        }
        if !retry {
            tracing::error!(%why, "cannot subscribe to the agent; giving up");
            if !self.live.is_empty() {
                // E.g. a new executor with the checkpoint of one that died: the agent
                // already failed its tasks and will never take them back.
                tracing::warn!(
                    tasks = self.live.len(),
                    "the agent does not take these tasks back: killing them and tearing their containers down"
                );
            }
            self.shutdown(Exit::Refused(why));
            return;
        }
        if was && !self.env.checkpoint {
            tracing::error!("framework checkpointing is off: not waiting for the agent");
            self.shutdown(Exit::AgentLost(why));
            return;
        }
        if self.leaving.is_none()
            || self.live.is_empty()
            || !self.store.unacknowledged_updates().is_empty()
        {
            self.reconnect_at = Some(Instant::now() + jitter(self.env.subscription_backoff_max));
        }
    }

    fn on_event(&mut self, ev: Event) -> Result<(), SessionError> {
        match ev {
            Event::Subscribed(sub) => self.on_subscribed(*sub),
            Event::Launch { task, raw } => {
                let id = task.task_id.value.clone();
                if self.store.knows_task(&id) {
                    tracing::warn!(task = %id, "LAUNCH of a task this executor already has; ignored");
                    return Ok(());
                }
                self.store.add_task(&id, raw);
                self.persist()?;
                if self.leaving.is_some() {
                    self.send(
                        TaskEvent::new(&id, TaskState::TaskKilled)
                            .reason(Reason::ReasonTaskKilledDuringLaunch)
                            .message("the executor is shutting down"),
                    )?;
                    return Ok(());
                }
                tracing::info!(task = %id, "LAUNCH");
                self.start(*task, false);
            }
            Event::LaunchInvalid { task_id, raw, why } => {
                let id = task_id.value;
                if self.store.knows_task(&id) {
                    tracing::warn!(task = %id, "LAUNCH of a task this executor already has; ignored");
                    return Ok(());
                }
                tracing::warn!(task = %id, %why, "LAUNCH with an undecodable TaskInfo");
                self.store.add_task(&id, raw);
                self.send(
                    TaskEvent::new(&id, TaskState::TaskFailed)
                        .reason(Reason::ReasonTaskInvalid)
                        .message(why),
                )?;
            }
            Event::LaunchGroup { tasks } => {
                for (id, raw) in tasks {
                    self.store.add_task(&id.value, raw);
                    self.send(
                        TaskEvent::new(&id.value, TaskState::TaskFailed)
                            .reason(Reason::ReasonTaskGroupInvalid)
                            .message(
                                "berth-executor does not run task groups (LAUNCH_GROUP); \
                                  launch the tasks one by one",
                            ),
                    )?;
                }
            }
            Event::Kill {
                task_id,
                kill_policy,
            } => self.kill(&task_id.value, kill_policy.as_ref(), None)?,
            Event::Acknowledged { task_id, uuid } => {
                if self.store.acknowledge(&task_id, &uuid).is_some() {
                    self.persist()?;
                } else {
                    tracing::debug!(task = %task_id.value, "acknowledgement of an unknown update");
                }
            }
            Event::Message { data } => {
                tracing::info!(bytes = data.0.len(), "MESSAGE from the framework")
            }
            Event::Error { message } => tracing::error!(%message, "ERROR event from the agent"),
            Event::Shutdown => {
                tracing::info!("SHUTDOWN");
                self.shutdown(Exit::Shutdown);
            }
            Event::Heartbeat => tracing::trace!("heartbeat"),
            Event::Unknown { kind } => tracing::debug!(%kind, "unknown event type ignored"),
        }
        Ok(())
    }

    fn on_subscribed(&mut self, sub: Subscribed) {
        if let Some(why) = foreign(&sub, &self.executor_id, &self.framework_id) {
            // An agent answering for another executor (a stale endpoint, a reused port):
            // nothing it sends is for us. Ignore the rest of this stream and leave.
            self.gen += 1;
            self.disconnected(why, false);
            return;
        }
        tracing::info!(agent = %sub.agent_info.hostname, "subscribed");
        self.connected = true;
        self.subscribing = false;
        self.live_gen.store(self.gen, Ordering::SeqCst);
        self.disconnected_since = None;
        self.framework = sub.framework_info;
        // Updates made while the SUBSCRIBE was on its way (e.g. by tasks recovered
        // before it) are not in it: post them now rather than at the retry timer.
        let late: Vec<TaskStatus> = self
            .store
            .unacknowledged_updates()
            .iter()
            .filter(|s| {
                s.uuid
                    .as_ref()
                    .is_none_or(|u| !self.carried.contains(&uuid_key(u)))
            })
            .cloned()
            .collect();
        for status in late {
            self.post_update(status);
        }
        // SUBSCRIBE carried the unacknowledged updates; retry them if no ack comes.
        self.retry_at = Some(Instant::now() + UPDATE_RETRY);
    }

    /// KILL: TASK_KILLING if the framework wants it, then a deadline that only shortens.
    fn kill(
        &mut self,
        id: &str,
        policy: Option<&KillPolicy>,
        cap: Option<Duration>,
    ) -> Result<(), SessionError> {
        let wants_killing = self.framework.has_capability("TASK_KILLING_STATE");
        let Some(live) = self.live.get_mut(id) else {
            tracing::info!(task = %id, "KILL of a task that is not running; ignored");
            return Ok(());
        };
        let mut grace = kill::grace(policy, live.policy.as_ref());
        if let Some(cap) = cap {
            grace = grace.min(cap);
        }
        let proposed = Instant::now() + grace;
        let current = *live.kill.borrow();
        let deadline = kill::next_deadline(current, proposed);
        live.kill.send_replace(Some(deadline));
        tracing::info!(task = %id, ?grace, repeated = current.is_some(), "KILL");
        let send_killing = wants_killing && !live.killing_sent;
        live.killing_sent = true;
        if send_killing {
            self.send(TaskEvent::new(id, TaskState::TaskKilling))?;
        }
        Ok(())
    }

    fn shutdown(&mut self, exit: Exit) {
        if self.leaving.is_some() {
            return;
        }
        let grace = self.env.shutdown_grace_period;
        // Leave a little of the grace period for teardown and the last updates.
        let cap = grace.mul_f64(0.6);
        self.leaving = Some((Instant::now() + grace, exit));
        let ids: Vec<String> = self.live.keys().cloned().collect();
        for id in ids {
            if let Err(e) = self.kill(&id, None, Some(cap)) {
                tracing::error!(error = %error_chain(&e), "during shutdown");
            }
        }
    }

    fn on_task_event(&mut self, ev: TaskEvent) -> Result<(), SessionError> {
        if ev.kill_request {
            return self.kill(&ev.task_id, None, None);
        }
        if ev.state.is_terminal() {
            self.live.remove(&ev.task_id);
        }
        self.send(ev)
    }

    /// Records a status and sends it when connected (otherwise SUBSCRIBE carries it).
    fn send(&mut self, ev: TaskEvent) -> Result<(), SessionError> {
        let container_status = ev.ip.map(|ip| ContainerStatus {
            container_id: None,
            network_infos: vec![NetworkInfo {
                ip_addresses: vec![IpAddress {
                    protocol: Some("IPv4".into()),
                    ip_address: ip,
                }],
            }],
        });
        let status = stamp(
            TaskStatus {
                task_id: Id::new(ev.task_id),
                state: ev.state,
                source: None,
                reason: ev.reason,
                message: ev.message,
                uuid: None,
                timestamp: None,
                healthy: ev.healthy,
                executor_id: None,
                agent_id: None,
                container_status,
                data: None,
                labels: None,
            },
            &self.executor_id,
        );
        tracing::info!(task = %status.task_id.value, state = ?status.state, message = ?status.message, "status update");
        self.store.push(status.clone());
        self.persist()?;
        if self.connected {
            self.post_update(status);
            self.retry_at.get_or_insert(Instant::now() + UPDATE_RETRY);
        } else if !self.subscribing
            && self.reconnect_at.is_none()
            && self.env.checkpoint
            && !matches!(
                self.leaving,
                Some((_, Exit::Refused(_) | Exit::AgentLost(_)))
            )
        {
            // Disconnected with no attempt under way (e.g. the agent went away during
            // SHUTDOWN): this update must reach the agent, so try again.
            self.reconnect_at = Some(Instant::now() + jitter(self.env.subscription_backoff_max));
        }
        Ok(())
    }

    fn post_update(&self, status: TaskStatus) {
        let call = Call::update(&self.executor_id, &self.framework_id, status);
        let _ = self
            .send_tx
            .send((self.gen, serde_json::to_vec(&call).unwrap_or_default()));
    }

    /// Posts every unacknowledged update again, with its uuid (the agent acknowledges a
    /// duplicate again and does not forward it twice).
    fn resend_unacknowledged(&mut self, now: Instant) {
        let pending = self.store.unacknowledged_updates().to_vec();
        if pending.is_empty() {
            self.retry_at = None;
            return;
        }
        tracing::info!(
            count = pending.len(),
            "updates still unacknowledged; posting them again"
        );
        for status in pending {
            self.post_update(status);
        }
        self.retry_at = Some(now + UPDATE_RETRY);
    }
}

/// How long an update may stay unacknowledged on an open stream before it is posted again.
pub const UPDATE_RETRY: Duration = Duration::from_secs(10);

/// Posts UPDATE calls one at a time, in order. A failed post is not retried here: the
/// update stays in the store and goes out again on the session's retry timer
/// ([`UPDATE_RETRY`]) or with the next SUBSCRIBE.
async fn sender(
    agent: AgentClient,
    mut rx: mpsc::UnboundedReceiver<(u64, Vec<u8>)>,
    live_gen: Arc<AtomicU64>,
) {
    while let Some((gen, body)) = rx.recv().await {
        if live_gen.load(Ordering::SeqCst) != gen {
            tracing::debug!("UPDATE of a lost connection dropped; resubscription resends it");
            continue;
        }
        if let Err(why) = connection::post(&agent, body).await {
            tracing::warn!(%why, "UPDATE not accepted; it will be resent on resubscription");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_zero_and_the_maximum_and_varies() {
        let max = Duration::from_millis(200);
        let draws: Vec<Duration> = (0..2000).map(|_| jitter(max)).collect();
        assert!(draws.iter().all(|d| *d <= max), "{:?}", draws.iter().max());
        let low = draws.iter().filter(|d| **d < max / 4).count();
        let high = draws.iter().filter(|d| **d > max * 3 / 4).count();
        // Uniform: about 500 each; anything stuck at one end fails.
        assert!(low > 300 && high > 300, "low {low}, high {high}");
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
