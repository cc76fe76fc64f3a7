//! A strict Marathon API double (the real Marathon cannot be installed here): the parts
//! berth's central services use, `GET /v2/apps/{id}/tasks` and the `/v2/events` SSE
//! stream, in Marathon's JSON shapes and framing (`event:`/`data:` lines ending in CRLF,
//! keep-alive comments), refusing what Marathon refuses (see [`server`]).
//!
//! A test drives it: add apps and tasks, change task states and health, kill tasks (the
//! matching events go to the open streams, filtered by their `event_type=` parameters),
//! remove a task silently (a missed event), emit any event, drop the open streams. The
//! [`bridge`] feeds it from the Mesos agent double so that Marathon's view (task ids,
//! IPs, health) is the real tasks'.
//!
//! # Layout
//! - `state`: apps, tasks and their JSON, the streams, the request log.
//! - `server`: the routes and refusals.
//! - `bridge`: Mesos agent double updates -> Marathon tasks and events.
//! - `app`: an app definition -> the TaskInfo and executor Marathon launches for it.

pub mod app;
pub mod bridge;
pub mod server;
pub mod state;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use server::Shared;
use state::{State, Task, TERMINAL};

/// How a double is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// HTTP basic-auth user and password every request must carry.
    pub credentials: Option<(String, String)>,
    /// A keep-alive comment on every stream this often.
    pub keepalive: Duration,
    /// Listen here (default: a free port on 127.0.0.1).
    pub listen: Option<std::net::SocketAddr>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            credentials: None,
            keepalive: Duration::from_secs(1),
            listen: None,
        }
    }
}

/// A running double; dropping it stops the server and closes every stream.
pub struct MarathonDouble {
    shared: Shared,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MarathonDouble {
    pub fn start(opts: Options) -> MarathonDouble {
        let listen = opts
            .listen
            .unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr"));
        let std_listener = std::net::TcpListener::bind(listen).expect("bind the Marathon double");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let auth = opts.credentials.as_ref().map(|(u, p)| {
            use base64::Engine as _;
            let raw = format!("{u}:{p}");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        });
        let shared: Shared = Arc::new(Mutex::new(State {
            auth,
            ..State::default()
        }));
        let (stop, stopped) = oneshot::channel::<()>();
        let sh = shared.clone();
        let every = opts.keepalive;
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let ka = sh.clone();
                tokio::spawn(async move {
                    let mut t = tokio::time::interval(every);
                    loop {
                        t.tick().await;
                        ka.lock().unwrap().keepalive();
                    }
                });
                let h = sh.clone();
                berth_http::server::serve(
                    listener,
                    None,
                    move |req, _peer| server::handle(h.clone(), req),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
                // Close the streams before the runtime (and the connections) go.
                sh.lock().unwrap().streams.clear();
            });
        });
        MarathonDouble {
            shared,
            url: format!("http://{addr}"),
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock().unwrap()
    }

    /// Make an app known (with no tasks yet).
    pub fn add_app(&self, app: &str) {
        self.state().apps.entry(app.to_string()).or_default();
    }

    /// A task's new Mesos state (creating the task in `app` if new), with its IP once
    /// known; sends `status_update_event`. A terminal state removes it from the listing.
    pub fn status(&self, app: &str, id: &str, state: &str, ip: Option<IpAddr>, ports: &[u16]) {
        let mut st = self.state();
        let tasks = st.apps.entry(app.to_string()).or_default();
        let t = tasks.entry(id.to_string()).or_insert_with(|| Task {
            app_id: app.to_string(),
            id: id.to_string(),
            host: "marathon-double-node".into(),
            ip: None,
            ports: ports.to_vec(),
            state: String::new(),
            alive: None,
            staged_at: state::now(),
            started_at: None,
        });
        t.state = state.to_string();
        if ip.is_some() {
            t.ip = ip;
        }
        if state == "TASK_RUNNING" && t.started_at.is_none() {
            t.started_at = Some(state::now());
        }
        let data = t.status_event();
        if TERMINAL.contains(&state) {
            tasks.remove(id);
        }
        st.emit("status_update_event", data);
    }

    /// A running task (as after TASK_STAGING/STARTING/RUNNING).
    pub fn add_task(&self, app: &str, id: &str, ip: IpAddr, ports: &[u16]) {
        self.status(app, id, "TASK_RUNNING", Some(ip), ports);
    }

    /// TASK_KILLED: the task leaves the listing, with its event.
    pub fn kill_task(&self, id: &str) {
        let app = self.app_of(id);
        self.status(&app, id, "TASK_KILLED", None, &[]);
    }

    /// The task vanishes from the listing without any event (a missed event).
    pub fn remove_task(&self, id: &str) {
        for tasks in self.state().apps.values_mut() {
            tasks.remove(id);
        }
    }

    /// A health result; `health_status_changed_event` when it changes. Returns whether
    /// it did.
    pub fn set_health(&self, id: &str, alive: bool) -> bool {
        let mut st = self.state();
        let t = st.task_mut(id).unwrap_or_else(|| panic!("no task {id}"));
        if t.alive == Some(alive) {
            return false;
        }
        t.alive = Some(alive);
        let data = t.health_event(alive);
        st.emit("health_status_changed_event", data);
        true
    }

    /// Marathon kills an unhealthy task: `unhealthy_task_kill_event`, then TASK_KILLED.
    pub fn unhealthy_kill(&self, id: &str) {
        let data = {
            let mut st = self.state();
            let t = st.task_mut(id).unwrap_or_else(|| panic!("no task {id}"));
            t.alive = Some(false);
            t.unhealthy_kill_event()
        };
        self.state().emit("unhealthy_task_kill_event", data);
        self.kill_task(id);
    }

    /// Any event, as is.
    pub fn emit(&self, name: &str, data: Value) {
        self.state().emit(name, data);
    }

    /// Close every open event stream (clients should reconnect).
    pub fn drop_streams(&self) {
        self.state().streams.clear();
    }

    /// How many event streams are open.
    pub fn streams(&self) -> usize {
        let mut st = self.state();
        st.streams.retain(|s| !s.tx.is_closed());
        st.streams.len()
    }

    /// Waits until `cond` holds (checked every 10 ms); returns whether it did in time.
    pub fn wait(&self, timeout: Duration, mut cond: impl FnMut(&State) -> bool) -> bool {
        let end = std::time::Instant::now() + timeout;
        loop {
            if cond(&self.state()) {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn app_of(&self, id: &str) -> String {
        self.state()
            .apps
            .iter()
            .find(|(_, tasks)| tasks.contains_key(id))
            .map(|(a, _)| a.clone())
            .unwrap_or_else(|| panic!("no task {id}"))
    }
}

impl Drop for MarathonDouble {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
