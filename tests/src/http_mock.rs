//! A loopback HTTP/1.1 server that answers routes with canned replies and logs every
//! request: the tracker and forge APIs (GitHub, GitLab, Jira, YouTrack, Linear) in tests.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Never answer (for timeouts).
    pub hang: bool,
}

pub fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.into(),
        hang: false,
    }
}

impl Reply {
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

struct Route {
    path: String,
    /// Substrings the query (or a POST's body) must contain.
    query: Vec<String>,
    /// Answers in order; the last repeats.
    replies: VecDeque<Reply>,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lowercased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub struct Mock {
    pub base: String,
    routes: Arc<Mutex<Vec<Route>>>,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Mock {
    pub fn start() -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mock = Mock {
            base,
            routes: Arc::default(),
            log: Arc::default(),
        };
        let server = mock.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = server.clone();
                std::thread::spawn(move || server.serve(stream));
            }
        });
        mock
    }

    pub fn route(&self, path: &str, query: &[&str], replies: Vec<Reply>) {
        self.routes.lock().expect("routes").push(Route {
            path: path.into(),
            query: query.iter().map(|q| (*q).to_owned()).collect(),
            replies: replies.into(),
        });
    }

    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn all_requests(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let method = line.split_whitespace().next().unwrap_or("GET").to_owned();
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        self.log.lock().expect("log").push(Request {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.clone(),
        });
        let found = {
            let mut routes = self.routes.lock().expect("routes");
            routes
                .iter_mut()
                .find(|r| {
                    r.path == path
                        && r.query
                            .iter()
                            .all(|q| query.contains(q.as_str()) || body.contains(q.as_str()))
                })
                .map(|r| {
                    if r.replies.len() > 1 {
                        r.replies.pop_front().expect("reply")
                    } else {
                        r.replies[0].clone()
                    }
                })
        };
        let reply = found.unwrap_or_else(|| reply(599, format!("no mock route for {target}")));
        if reply.hang {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        let body = reply.body.replace("{base}", &self.base);
        let mut out = format!("HTTP/1.1 {} Mock\r\n", reply.status);
        for (n, v) in &reply.headers {
            out.push_str(&format!("{n}: {}\r\n", v.replace("{base}", &self.base)));
        }
        out.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        let _ = (&stream).write_all(out.as_bytes());
    }
}
