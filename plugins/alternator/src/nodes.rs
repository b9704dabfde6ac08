//! The Alternator nodes one sink writes to, as ScyllaDB's alternator-load-balancing client
//! libraries spread requests over a cluster:
//!
//! - **Which nodes.** The `endpoints` given, and with `discovery`, the live nodes of the seed's
//!   datacenter from Alternator's unauthenticated `GET /localnodes` (narrowed with `?dc=` and
//!   `?rack=`), refreshed every `refresh` from the seed or any live node. `/localnodes` answers
//!   host names; each becomes a URL with the seed's scheme and port.
//! - **Spreading.** Requests go round-robin over the live nodes.
//! - **Failover.** A request that gets no answer (a refused connection, a timeout) or a 5xx is sent
//!   to the next node at once; DynamoDB's write operations are idempotent, so a request that did
//!   reach the failed node does no harm when repeated. Errors the table answers (a refused item,
//!   throttling) are the table's, not the node's: they are returned as they are.
//! - **Taking out and probing back.** A node that failed is out of the rotation; every second the
//!   nodes that are out are probed with `GET /localnodes`, and a node that answers is back in.
//!   When every node is out, requests still try them all, so nothing is refused untried.
//! - **Metrics per node**: `eddy_alternator_requests_total{node}`,
//!   `eddy_alternator_node_failures_total{node}`, and `eddy_alternator_nodes_live`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use eddy_aws_json::{AwsJsonClient, AwsJsonError};

/// Requests sent to an Alternator node, by `node` (its URL).
pub const REQUESTS: &str = "eddy_alternator_requests_total";
/// Requests to a node that failed for the node's sake (no answer, 5xx), by `node`.
pub const NODE_FAILURES: &str = "eddy_alternator_node_failures_total";
/// Nodes in the rotation, over every Alternator sink of the process.
pub const NODES_LIVE: &str = "eddy_alternator_nodes_live";

/// How often nodes that are out are probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Builds the signed client of one node URL.
pub type MakeClient = Arc<dyn Fn(&str) -> Result<AwsJsonClient, String> + Send + Sync>;

/// `discovery:` of an `alternator` sink.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// A node to ask first, e.g. `http://scylla-node1:8000`.
    pub seed: String,
    /// Only nodes of this datacenter (`/localnodes?dc=`); default: the contacted node's.
    #[serde(default)]
    pub datacenter: Option<String>,
    /// Only nodes of this rack (`/localnodes?rack=`).
    #[serde(default)]
    pub rack: Option<String>,
    /// How often the node list is refreshed. Default 60s.
    #[serde(default = "default_refresh", deserialize_with = "eddy_sink_api::duration::deserialize")]
    pub refresh: Duration,
}

fn default_refresh() -> Duration {
    Duration::from_secs(60)
}

/// One node.
pub struct Node {
    /// Its URL, e.g. `http://10.0.0.7:8000`.
    pub url: String,
    client: AwsJsonClient,
    live: AtomicBool,
    requests: metrics::Counter,
    failures: metrics::Counter,
}

impl Node {
    fn new(url: &str, make: &MakeClient) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            url: url.to_owned(),
            client: make(url)?,
            live: AtomicBool::new(true),
            requests: metrics::counter!(REQUESTS, "node" => url.to_owned()),
            failures: metrics::counter!(NODE_FAILURES, "node" => url.to_owned()),
        }))
    }

    /// Whether it is in the rotation.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }

    fn set_live(&self, live: bool) {
        if self.live.swap(live, Ordering::Relaxed) != live {
            metrics::gauge!(NODES_LIVE).increment(if live { 1.0 } else { -1.0 });
            if live {
                tracing::info!(node = self.url, "the Alternator node is back in the rotation");
            } else {
                tracing::warn!(node = self.url, "the Alternator node failed; taking it out of the rotation");
            }
        }
    }
}

/// The nodes of one sink.
pub struct Nodes {
    nodes: RwLock<Arc<Vec<Arc<Node>>>>,
    next: AtomicUsize,
    make: MakeClient,
    discovery: Option<Discovery>,
    http: reqwest::Client,
}

impl Nodes {
    /// One node with its client (a single `endpoint`).
    pub fn single(url: &str, client: AwsJsonClient) -> Arc<Self> {
        let make: MakeClient = Arc::new(|_: &str| Err("a single-node sink makes no clients".to_owned()));
        let node = Arc::new(Node {
            url: url.to_owned(),
            client,
            live: AtomicBool::new(true),
            requests: metrics::counter!(REQUESTS, "node" => url.to_owned()),
            failures: metrics::counter!(NODE_FAILURES, "node" => url.to_owned()),
        });
        metrics::gauge!(NODES_LIVE).increment(1.0);
        Arc::new(Self {
            nodes: RwLock::new(Arc::new(vec![node])),
            next: AtomicUsize::new(0),
            make,
            discovery: None,
            http: reqwest::Client::new(),
        })
    }

    /// The nodes at `urls` (and the seed of `discovery`, when given and no URL is), with clients
    /// from `make`. With `discovery`, the list is refreshed from `/localnodes` at once (a failure
    /// keeps the given nodes) and then every `refresh` by [`Nodes::maintain`].
    ///
    /// # Errors
    /// When there is no node at all, or a URL is not valid.
    pub async fn new(urls: &[String], discovery: Option<Discovery>, make: MakeClient) -> Result<Arc<Self>, String> {
        let mut initial: Vec<String> = urls.to_vec();
        if let (true, Some(d)) = (initial.is_empty(), &discovery) {
            initial.push(d.seed.clone());
        }
        if initial.is_empty() {
            return Err("no Alternator node: set `endpoint`, `endpoints` or `discovery`".to_owned());
        }
        let nodes: Vec<Arc<Node>> = initial.iter().map(|u| Node::new(u, &make)).collect::<Result<_, _>>()?;
        metrics::gauge!(NODES_LIVE).increment(nodes.len() as f64);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let this =
            Arc::new(Self { nodes: RwLock::new(Arc::new(nodes)), next: AtomicUsize::new(0), make, discovery, http });
        if this.discovery.is_some() {
            match this.discover().await {
                Ok(_) => {}
                // An answer naming no node (a datacenter or rack without nodes) is a mistake in
                // the config, not an outage.
                Err(e) if e.contains("answered no node") => return Err(e),
                Err(e) => tracing::warn!("Alternator node discovery failed, keeping the given nodes: {e}"),
            }
        }
        Ok(this)
    }

    /// The nodes now.
    pub fn list(&self) -> Arc<Vec<Arc<Node>>> {
        Arc::clone(&self.nodes.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Calls `operation` on a live node, round-robin, failing over to the next node when one does
    /// not answer or answers 5xx (every node is tried at most once per call).
    ///
    /// # Errors
    /// The table's error answer as it is; or, when every node failed, the last node's error.
    pub async fn call(&self, operation: &str, body: bytes::Bytes) -> Result<bytes::Bytes, AwsJsonError> {
        let nodes = self.list();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let rotated = (0..nodes.len()).map(|i| &nodes[(start + i) % nodes.len()]);
        // Live nodes first, then the ones that are out: nothing is refused untried.
        let order: Vec<&Arc<Node>> =
            rotated.clone().filter(|n| n.is_live()).chain(rotated.filter(|n| !n.is_live())).collect();
        let mut last = None;
        for node in order {
            node.requests.increment(1);
            match node.client.call(operation, body.clone()).await {
                Err(e) if node_fault(&e) => {
                    node.failures.increment(1);
                    // A rotation of one has nobody to fail over to: the error goes to the retry
                    // policy, and the node stays.
                    if nodes.len() > 1 {
                        node.set_live(false);
                    }
                    last = Some(e);
                }
                answer => {
                    node.set_live(true);
                    return answer;
                }
            }
        }
        Err(last.expect("a sink has at least one node"))
    }

    /// `GET /localnodes` of the seed (else of each live node in turn), narrowed to the datacenter
    /// and rack, and makes the answer the node list. Known nodes keep their clients and state.
    ///
    /// # Errors
    /// When no node answers with a non-empty list.
    pub async fn discover(&self) -> Result<usize, String> {
        let Some(d) = &self.discovery else { return Ok(self.list().len()) };
        let mut asked = vec![d.seed.clone()];
        asked.extend(self.list().iter().filter(|n| n.is_live()).map(|n| n.url.clone()));
        let mut last = String::new();
        for base in asked {
            match self.local_nodes(&base, d).await {
                Ok(hosts) if !hosts.is_empty() => {
                    let urls: Vec<String> = hosts.iter().map(|h| with_host(&base, h)).collect::<Result<_, _>>()?;
                    let old = self.list();
                    let mut nodes = Vec::with_capacity(urls.len());
                    for url in &urls {
                        match old.iter().find(|n| &n.url == url) {
                            Some(n) => nodes.push(Arc::clone(n)),
                            None => {
                                let node = Node::new(url, &self.make)?;
                                metrics::gauge!(NODES_LIVE).increment(1.0);
                                nodes.push(node);
                            }
                        }
                    }
                    let gone = old.iter().filter(|n| n.is_live() && !urls.contains(&n.url)).count();
                    metrics::gauge!(NODES_LIVE).decrement(gone as f64);
                    *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(nodes);
                    return Ok(urls.len());
                }
                Ok(_) => {
                    let mut narrowed = Vec::new();
                    if let Some(dc) = &d.datacenter {
                        narrowed.push(format!("datacenter {dc:?}"));
                    }
                    if let Some(rack) = &d.rack {
                        narrowed.push(format!("rack {rack:?}"));
                    }
                    let within =
                        if narrowed.is_empty() { String::new() } else { format!(" in {}", narrowed.join(", ")) };
                    last = format!(
                        "{base}/localnodes answered no node{within}: check `discovery.datacenter` and `discovery.rack`"
                    );
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn local_nodes(&self, base: &str, d: &Discovery) -> Result<Vec<String>, String> {
        let mut request = self.http.get(format!("{}/localnodes", base.trim_end_matches('/')));
        if let Some(dc) = &d.datacenter {
            request = request.query(&[("dc", dc)]);
        }
        if let Some(rack) = &d.rack {
            request = request.query(&[("rack", rack)]);
        }
        let answer = request.send().await.map_err(|e| format!("{base}/localnodes: {e}"))?;
        if !answer.status().is_success() {
            return Err(format!("{base}/localnodes answered {}", answer.status()));
        }
        answer.json::<Vec<String>>().await.map_err(|e| format!("{base}/localnodes: not a list of nodes: {e}"))
    }

    /// Probes the nodes that are out every second (`GET /localnodes`; an answer brings a node
    /// back) and, with discovery, refreshes the node list every `refresh`. Ends when the sink is
    /// dropped.
    pub async fn maintain(this: Weak<Self>) {
        let mut refreshed = Instant::now();
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            let Some(nodes) = this.upgrade() else { return };
            for node in nodes.list().iter().filter(|n| !n.is_live()) {
                let probe = nodes.http.get(format!("{}/localnodes", node.url.trim_end_matches('/'))).send().await;
                if probe.is_ok_and(|r| r.status().is_success()) {
                    node.set_live(true);
                }
            }
            if nodes.discovery.as_ref().is_some_and(|d| refreshed.elapsed() >= d.refresh) {
                refreshed = Instant::now();
                if let Err(e) = nodes.discover().await {
                    tracing::warn!("Alternator node discovery failed, keeping the known nodes: {e}");
                }
            }
        }
    }
}

/// Whether `e` is the node's fault (no answer, 5xx), so that another node should be tried.
fn node_fault(e: &AwsJsonError) -> bool {
    match e {
        AwsJsonError::Transport(_) => true,
        AwsJsonError::Service { status, .. } => *status >= 500,
        AwsJsonError::Credentials(_) => false,
    }
}

/// `base` (a URL) with its host replaced by `host` (an IP address or name from `/localnodes`).
fn with_host(base: &str, host: &str) -> Result<String, String> {
    let mut url = reqwest::Url::parse(base).map_err(|e| format!("{base}: {e}"))?;
    // `/localnodes` gives IPv6 addresses bare (`::1`); a URL needs them in brackets.
    let bracketed;
    let host = if host.contains(':') && !host.starts_with('[') {
        bracketed = format!("[{host}]");
        &bracketed
    } else {
        host
    };
    url.set_host(Some(host)).map_err(|e| format!("node {host:?} from /localnodes: {e}"))?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A fake Alternator node on `address`: `GET /localnodes` answers `hosts`, any POST answers
    /// `{}` (an empty BatchWriteItem answer) and is counted. Aborting the task takes it down.
    async fn node(address: &str, hosts: &'static str, posts: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let posts = Arc::clone(&posts);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 8192];
                    loop {
                        let Ok(n) = stream.read(&mut buf).await else { return };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).into_owned();
                        let Some(end) = text.find("\r\n\r\n") else { continue };
                        let length: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if request.len() < end + 4 + length {
                            continue;
                        }
                        let body = if text.starts_with("GET /localnodes") {
                            hosts
                        } else {
                            posts.fetch_add(1, Ordering::Relaxed);
                            "{}"
                        };
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                        return;
                    }
                });
            }
        })
    }

    fn make() -> MakeClient {
        let credentials = aws_credential_types::Credentials::new("a", "b", None, None, "test");
        let provider = aws_credential_types::provider::SharedCredentialsProvider::new(credentials);
        Arc::new(move |url: &str| {
            AwsJsonClient::new(
                eddy_aws_json::DYNAMODB,
                url,
                "us-east-1",
                provider.clone(),
                &eddy_sink_api::Timeouts::default(),
            )
        })
    }

    /// A datacenter without nodes (the seed answers `[]`) is a clear error at start.
    #[tokio::test(flavor = "multi_thread")]
    async fn discovery_in_a_datacenter_without_nodes_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let _seed = node(&format!("127.0.0.1:{port}"), "[]", Arc::new(AtomicU64::new(0))).await;
        let discovery = Discovery {
            seed: format!("http://127.0.0.1:{port}"),
            datacenter: Some("nowhere".into()),
            rack: None,
            refresh: Duration::from_secs(60),
        };
        let err = Nodes::new(&[], Some(discovery), make()).await.err().expect("refused");
        assert!(err.contains("answered no node in datacenter \"nowhere\""), "{err}");
    }

    /// Three nodes found through the seed's `/localnodes` share the requests evenly; a node that
    /// goes down is failed over at once and taken out; once it answers again, the probe brings it
    /// back into the rotation.
    #[tokio::test(flavor = "multi_thread")]
    async fn requests_spread_over_discovered_nodes_fail_over_and_a_node_comes_back() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let hosts = r#"["127.0.0.1","127.0.0.2","127.0.0.3"]"#;
        let counts: Vec<Arc<AtomicU64>> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let mut servers = Vec::new();
        for (i, count) in counts.iter().enumerate() {
            servers.push(node(&format!("127.0.0.{}:{port}", i + 1), hosts, Arc::clone(count)).await);
        }
        let discovery = Discovery {
            seed: format!("http://127.0.0.1:{port}"),
            datacenter: Some("dc1".into()),
            rack: None,
            refresh: Duration::from_secs(60),
        };
        let nodes = Nodes::new(&[], Some(discovery), make()).await.unwrap();
        let urls: Vec<String> = nodes.list().iter().map(|n| n.url.clone()).collect();
        assert_eq!(urls, (1..=3).map(|i| format!("http://127.0.0.{i}:{port}")).collect::<Vec<_>>());
        let load = |counts: &[Arc<AtomicU64>]| counts.iter().map(|c| c.swap(0, Ordering::Relaxed)).collect::<Vec<_>>();

        for _ in 0..30 {
            nodes.call("BatchWriteItem", bytes::Bytes::from_static(b"{}")).await.unwrap();
        }
        assert_eq!(load(&counts), [10, 10, 10], "round-robin over the live nodes");

        servers[1].abort();
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..30 {
            nodes.call("BatchWriteItem", bytes::Bytes::from_static(b"{}")).await.expect("failed over to a live node");
        }
        let after = load(&counts);
        assert_eq!(after[1], 0);
        assert_eq!(after[0] + after[2], 30, "{after:?}");
        assert!(!nodes.list()[1].is_live(), "the failed node is out of the rotation");

        servers[1] = node(&format!("127.0.0.2:{port}"), hosts, Arc::clone(&counts[1])).await;
        tokio::spawn(Nodes::maintain(Arc::downgrade(&nodes)));
        let started = Instant::now();
        while !nodes.list()[1].is_live() {
            assert!(started.elapsed() < Duration::from_secs(10), "the node was never probed back in");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for _ in 0..30 {
            nodes.call("BatchWriteItem", bytes::Bytes::from_static(b"{}")).await.unwrap();
        }
        assert_eq!(load(&counts), [10, 10, 10], "the node is back in the rotation");
    }

    #[test]
    fn local_node_hosts_take_the_seeds_scheme_and_port() {
        assert_eq!(with_host("http://10.0.0.1:8000", "10.0.0.7").unwrap(), "http://10.0.0.7:8000");
        assert_eq!(with_host("https://seed.example:8043/", "node2.example").unwrap(), "https://node2.example:8043");
    }

    #[test]
    fn bare_ipv6_addresses_from_localnodes_are_bracketed() {
        assert_eq!(with_host("http://127.0.0.1:8000", "::1").unwrap(), "http://[::1]:8000");
        assert_eq!(with_host("http://[::1]:8000", "fe80::2").unwrap(), "http://[fe80::2]:8000");
        assert_eq!(with_host("http://[::1]:8000", "[::2]").unwrap(), "http://[::2]:8000");
    }

    #[test]
    fn only_missing_answers_and_5xx_are_the_nodes_fault() {
        let service = |status| AwsJsonError::Service { status, code: String::new(), message: String::new() };
        assert!(node_fault(&AwsJsonError::Transport("refused".into())));
        assert!(node_fault(&service(503)));
        assert!(!node_fault(&service(400)));
        assert!(!node_fault(&AwsJsonError::Credentials("no".into())));
    }
}
