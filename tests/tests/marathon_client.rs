//! berth-agent's Marathon client against the Marathon double: typed tasks, the event
//! stream (filter, keep-alives, reconnect, silence, failover across URLs), credentials,
//! and the double's own refusals.

use std::net::IpAddr;
use std::time::Duration;

use berth_agent::marathon::types::Event;
use berth_agent::marathon::{config, Config, Error, EventStream, Item, Marathon};
use berth_http::url::Url;
use berth_tests::marathon::{MarathonDouble, Options};

const WANT: &[&str] = &[
    "status_update_event",
    "health_status_changed_event",
    "unhealthy_task_kill_event",
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg(urls: &[&str]) -> Config {
    let mut c = Config::new(urls.iter().map(|u| Url::parse(u).unwrap()).collect());
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(5);
    c.idle_timeout = Duration::from_secs(5);
    c.backoff = config::Backoff {
        min: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    c
}

fn with_auth(mut c: Config, user: &str, password: &str) -> Config {
    c.auth = Some(config::Credentials {
        user: user.into(),
        password: password.into(),
    });
    c
}

async fn next(s: &mut EventStream) -> Result<Item, Error> {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("no event-stream item within 5 s")
}

async fn next_event(s: &mut EventStream) -> Event {
    match next(s).await {
        Ok(Item::Event(e)) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// A URL nothing listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_typed_and_unknown_apps_are_404() {
    let m = MarathonDouble::start(Options::default());
    m.add_task("/shop/web", "shop_web.a1", ip("10.9.0.5"), &[8080]);
    m.set_health("shop_web.a1", true);
    m.status("/shop/web", "shop_web.a2", "TASK_STAGING", None, &[8080]);
    m.add_app("/empty");
    let c = Marathon::new(cfg(&[&m.url])).unwrap();
    let mut t = c.tasks("/shop/web").await.unwrap();
    t.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].app_id, "/shop/web");
    assert_eq!(
        (t[0].ipv4(), t[0].ports.clone()),
        (Some(ip("10.9.0.5")), vec![8080])
    );
    assert!(t[0].running() && t[0].healthy() == Some(true));
    assert!(!t[1].running() && t[1].ipv4().is_none() && t[1].healthy().is_none());
    assert!(c.tasks("/empty").await.unwrap().is_empty());
    let e = c.tasks("/nope").await.unwrap_err();
    assert!(matches!(e, Error::UnknownApp { .. }), "{e:?}");
    assert!(matches!(c.tasks("nope").await, Err(Error::BadAppId(_))));
    // A killed task leaves the listing.
    m.kill_task("shop_web.a1");
    let t = c.tasks("/shop/web").await.unwrap();
    assert_eq!(
        t.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["shop_web.a2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required_when_configured() {
    let m = MarathonDouble::start(Options {
        credentials: Some(("lvs".into(), "pw".into())),
        ..Options::default()
    });
    m.add_app("/a");
    for c in [cfg(&[&m.url]), with_auth(cfg(&[&m.url]), "lvs", "wrong")] {
        let c = Marathon::new(c).unwrap();
        let e = c.tasks("/a").await.unwrap_err();
        assert!(
            matches!(e, Error::Unauthorized { status: 401, .. }),
            "{e:?}"
        );
        let mut s = c.events(WANT);
        let e = next(&mut s).await.unwrap_err();
        assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
    }
    let c = Marathon::new(with_auth(cfg(&[&m.url]), "lvs", "pw")).unwrap();
    assert!(c.tasks("/a").await.unwrap().is_empty());
    let mut s = c.events(WANT);
    assert!(matches!(next(&mut s).await, Ok(Item::Connected { .. })));
    let st = m.state();
    assert_eq!(
        st.requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 401, 401, 401, 200, 200]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_typed_and_filtered() {
    let m = MarathonDouble::start(Options::default());
    let c = Marathon::new(cfg(&[&m.url])).unwrap();
    let mut s = c.events(WANT);
    assert!(matches!(next(&mut s).await, Ok(Item::Connected { .. })));
    assert!(m.wait(Duration::from_secs(2), |st| st.streams.len() == 1));
    assert!(m.state().requests[0]
        .path
        .contains("event_type=status_update_event"));

    m.add_task("/shop/web", "shop_web.a1", ip("10.9.0.5"), &[8080]);
    m.emit(
        "deployment_info",
        serde_json::json!({"eventType": "deployment_info"}),
    );
    m.set_health("shop_web.a1", true);
    m.set_health("shop_web.a1", false);
    m.unhealthy_kill("shop_web.a1");

    let Event::StatusUpdate(u) = next_event(&mut s).await else {
        panic!("not a status update")
    };
    assert_eq!(
        (
            u.task_id.as_str(),
            u.task_status.as_str(),
            u.app_id.as_str()
        ),
        ("shop_web.a1", "TASK_RUNNING", "/shop/web")
    );
    assert_eq!(u.ip_addresses[0].ip_address, ip("10.9.0.5"));
    // deployment_info was not asked for: Marathon filtered it out.
    let Event::HealthChanged(h) = next_event(&mut s).await else {
        panic!("not a health change")
    };
    assert!(h.alive && h.is_about("shop_web.a1"));
    let Event::HealthChanged(h) = next_event(&mut s).await else {
        panic!("not a health change")
    };
    assert!(!h.alive);
    let Event::UnhealthyTaskKill(k) = next_event(&mut s).await else {
        panic!("not an unhealthy kill")
    };
    assert!(k.is_about("shop_web.a1"));
    let Event::StatusUpdate(u) = next_event(&mut s).await else {
        panic!("not a status update")
    };
    assert_eq!(u.task_status, "TASK_KILLED");

    // Unfiltered, other events come through as Other.
    let mut all = c.events(&[]);
    assert!(matches!(next(&mut all).await, Ok(Item::Connected { .. })));
    assert!(m.wait(Duration::from_secs(2), |st| st.streams.len() == 2));
    m.emit(
        "deployment_info",
        serde_json::json!({"eventType": "deployment_info"}),
    );
    assert_eq!(
        next_event(&mut all).await,
        Event::Other("deployment_info".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_hold_a_quiet_stream_and_silence_reopens_it() {
    let m = MarathonDouble::start(Options {
        keepalive: Duration::from_millis(50),
        ..Options::default()
    });
    let mut c = cfg(&[&m.url]);
    c.idle_timeout = Duration::from_millis(400);
    let c = Marathon::new(c).unwrap();
    let mut s = c.events(WANT);
    assert!(matches!(next(&mut s).await, Ok(Item::Connected { .. })));
    // 1.5 s of keep-alives only: nothing to yield, and no reconnect.
    let quiet = tokio::time::timeout(Duration::from_millis(1500), s.next()).await;
    assert!(quiet.is_err(), "{quiet:?}");
    m.add_task("/a", "a.1", ip("10.9.0.6"), &[80]);
    assert!(matches!(next_event(&mut s).await, Event::StatusUpdate(_)));
    let opened = m
        .state()
        .requests
        .iter()
        .filter(|r| r.path.starts_with("/v2/events"))
        .count();
    assert_eq!(opened, 1);

    // A Marathon that sends nothing, not even keep-alives: the stream is reopened.
    let silent = MarathonDouble::start(Options {
        keepalive: Duration::from_secs(3600),
        ..Options::default()
    });
    let mut c = cfg(&[&silent.url]);
    c.idle_timeout = Duration::from_millis(300);
    let c = Marathon::new(c).unwrap();
    let mut s = c.events(WANT);
    assert!(matches!(next(&mut s).await, Ok(Item::Connected { .. })));
    // The interval's first tick is immediate: one keep-alive, then silence.
    let e = next(&mut s).await.unwrap_err();
    assert!(matches!(e, Error::Silent { .. }), "{e:?}");
    assert!(matches!(next(&mut s).await, Ok(Item::Connected { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_reconnects_and_says_so() {
    let m = MarathonDouble::start(Options::default());
    let c = Marathon::new(cfg(&[&m.url])).unwrap();
    let mut s = c.events(WANT);
    assert!(matches!(next(&mut s).await, Ok(Item::Connected { .. })));
    assert!(m.wait(Duration::from_secs(2), |st| st.streams.len() == 1));
    m.drop_streams();
    let e = next(&mut s).await.unwrap_err();
    assert!(matches!(e, Error::Ended { .. }), "{e:?}");
    assert!(matches!(next(&mut s).await, Ok(Item::Connected { .. })));
    assert!(m.wait(Duration::from_secs(2), |st| st.streams.len() == 1));
    m.add_task("/a", "a.1", ip("10.9.0.6"), &[80]);
    assert!(matches!(next_event(&mut s).await, Event::StatusUpdate(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_to_the_next_url_and_back() {
    let m2 = MarathonDouble::start(Options::default());
    m2.add_task("/a", "a.1", ip("10.9.0.7"), &[80]);
    let dead = dead_url();
    let c = Marathon::new(cfg(&[&dead, &m2.url])).unwrap();
    // tasks: the dead one is skipped.
    assert_eq!(c.tasks("/a").await.unwrap().len(), 1);
    // events: the first URL is preferred now the second answered; make a fresh client
    // that starts at the dead one.
    let c = Marathon::new(cfg(&[&dead, &m2.url])).unwrap();
    let mut s = c.events(WANT);
    let e = next(&mut s).await.unwrap_err();
    assert!(matches!(e, Error::Http { .. }), "{e:?}");
    match next(&mut s).await {
        Ok(Item::Connected { url }) => assert!(url.starts_with(&m2.url), "{url}"),
        other => panic!("{other:?}"),
    }
    // The second goes away and comes back on the same port: the stream follows it.
    let addr = m2.addr;
    drop(m2);
    let mut errors = 0;
    let m2 = loop {
        match next(&mut s).await {
            Err(_) => errors += 1,
            other => panic!("{other:?}"),
        }
        if errors == 3 {
            break MarathonDouble::start(Options {
                listen: Some(addr),
                ..Options::default()
            });
        }
    };
    let url = loop {
        match next(&mut s).await {
            Ok(Item::Connected { url }) => break url,
            Err(_) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert!(url.starts_with(&m2.url), "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_double_refuses_what_marathon_refuses() {
    use berth_http::client::{Client, Options as HttpOptions, Request};
    let m = MarathonDouble::start(Options::default());
    m.add_app("/a");
    let http = Client::new(HttpOptions::default()).unwrap();
    let get = |p: &str| Request::get(Url::parse(&format!("{}{p}", m.url)).unwrap());
    // The event stream needs Accept: text/event-stream.
    let r = http.send(get("/v2/events")).await.unwrap();
    assert_eq!(r.status.as_u16(), 406);
    let mut post = get("/v2/apps/a/tasks");
    post.method = berth_http::Method::POST;
    assert_eq!(http.send(post).await.unwrap().status.as_u16(), 405);
    assert_eq!(
        http.send(get("/v2/nothing")).await.unwrap().status.as_u16(),
        404
    );
    let r = http.send(get("/v2/apps/b/tasks")).await.unwrap();
    assert_eq!(r.status.as_u16(), 404);
    let body: serde_json::Value = r.json(4096).await.unwrap();
    assert_eq!(body["message"], "App '/b' does not exist");
    // Framing: CRLF lines, keep-alive comments.
    let r = http
        .send(get("/v2/events").header("accept", "text/event-stream"))
        .await
        .unwrap();
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let mut r = r;
    let first = tokio::time::timeout(Duration::from_secs(3), r.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b": keep-alive\r\n\r\n");
    m.add_task("/a", "a.1", ip("10.9.0.8"), &[80]);
    let ev = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let c = r.chunk().await.unwrap().unwrap();
            if c.starts_with(b"event:") {
                return c;
            }
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8(ev.to_vec()).unwrap();
    assert!(
        text.starts_with("event: status_update_event\r\ndata: {"),
        "{text}"
    );
    assert!(text.ends_with("}\r\n\r\n"), "{text}");
}
