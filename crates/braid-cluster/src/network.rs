//! Nodes talk over an internal gRPC service (`proto/internal.proto`) on their p2p port:
//! openraft's messages as JSON in one `bytes` field, and the calls a node makes of the
//! leader (join, propose, remove a peer).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use crate::proto::raft_client::RaftClient;
use crate::proto::{JoinRequest, Json, RemovePeerRequest};
use crate::{ClusterError, GroupTypes, PeerId};

/// How long a node waits for a peer to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn encode<T: Serialize>(value: &T) -> Json {
    Json {
        body: serde_json::to_vec(value).expect("openraft's messages serialize"),
        group: String::new(),
        to: 0,
    }
}

fn to_group<T: Serialize>(group: &str, value: &T) -> Json {
    Json { group: group.to_string(), ..encode(value) }
}

pub(crate) fn decode<T: DeserializeOwned>(json: &Json) -> Result<T, serde_json::Error> {
    serde_json::from_slice(&json.body)
}

/// How a node connects to its peers: one channel per peer URI, kept and shared by
/// every group and call (a channel reconnects by itself), made from the node's p2p
/// address when that is one address (not `0.0.0.0`), so that peers and anything
/// between them see which node a connection comes from on a host with several.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dialer {
    local: Option<IpAddr>,
    channels: Arc<Mutex<HashMap<String, RaftClient<Channel>>>>,
}

impl Dialer {
    /// Connections from `listen`'s address (any address if it is unspecified).
    pub(crate) fn from(listen: SocketAddr) -> Dialer {
        Dialer { local: Some(listen.ip()).filter(|ip| !ip.is_unspecified()), channels: Arc::default() }
    }

    /// A client of the peer at `uri`, connected when first used.
    pub(crate) fn client(&self, uri: &str) -> Result<RaftClient<Channel>, ClusterError> {
        if let Some(client) = self.channels.lock().get(uri) {
            return Ok(client.clone());
        }
        let endpoint = Endpoint::from_shared(uri.to_string())
            .map_err(|e| ClusterError::Config(format!("peer URI `{uri}`: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .local_address(self.local);
        let client = RaftClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(crate::node::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::node::MAX_MESSAGE_BYTES);
        self.channels.lock().insert(uri.to_string(), client.clone());
        Ok(client)
    }

    pub(crate) fn caller(&self, uri: &str) -> Result<Caller, ClusterError> {
        Ok(Caller { uri: uri.to_string(), client: self.client(uri)? })
    }
}

/// Calls of a node on another node outside Raft's own traffic.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    uri: String,
    client: RaftClient<Channel>,
}

impl Caller {
    fn unreachable(&self, status: tonic::Status) -> ClusterError {
        ClusterError::Unreachable { uri: self.uri.clone(), reason: status.message().to_string() }
    }

    fn answer<T: DeserializeOwned>(&self, json: &Json) -> Result<Result<T, String>, ClusterError> {
        decode(json).map_err(|e| ClusterError::Unreachable {
            uri: self.uri.clone(),
            reason: format!("bad answer: {e}"),
        })
    }

    pub(crate) async fn join<R: DeserializeOwned>(
        &mut self,
        peer_id: PeerId,
        uri: &str,
    ) -> Result<Result<R, String>, ClusterError> {
        let request = JoinRequest { peer_id, uri: uri.to_string() };
        let json = self.client.join(request).await.map_err(|s| self.unreachable(s))?.into_inner();
        self.answer(&json)
    }

    /// Proposes `command` to the leader of `group` this node reaches.
    pub(crate) async fn propose<D: Serialize, R: DeserializeOwned>(
        &mut self,
        group: &str,
        command: &D,
    ) -> Result<Result<R, String>, ClusterError> {
        let json = self
            .client
            .propose(to_group(group, command))
            .await
            .map_err(|s| self.unreachable(s))?
            .into_inner();
        self.answer(&json)
    }

    /// Reads `request` from this peer's replica of `group`.
    pub(crate) async fn read(
        &mut self,
        group: &str,
        request: &serde_json::Value,
    ) -> Result<Result<serde_json::Value, String>, ClusterError> {
        let json =
            self.client.read(to_group(group, request)).await.map_err(|s| self.unreachable(s))?.into_inner();
        self.answer(&json)
    }

    /// Asks this peer to carry out `change` in `group` if it leads it.
    pub(crate) async fn change_replicas(
        &mut self,
        group: &str,
        change: &crate::ReplicaChange,
    ) -> Result<Result<(), String>, ClusterError> {
        let json = self
            .client
            .change_replicas(to_group(group, change))
            .await
            .map_err(|s| self.unreachable(s))?
            .into_inner();
        self.answer(&json)
    }

    pub(crate) async fn remove_peer<R: DeserializeOwned>(
        &mut self,
        peer_id: PeerId,
    ) -> Result<Result<R, String>, ClusterError> {
        let json = self
            .client
            .remove_peer(RemovePeerRequest { peer_id })
            .await
            .map_err(|s| self.unreachable(s))?
            .into_inner();
        self.answer(&json)
    }
}

/// Makes openraft's connections to peers for one group.
#[derive(Clone, Debug, Default)]
pub(crate) struct Network {
    group: String,
    dialer: Dialer,
}

impl Network {
    pub(crate) fn new(group: &str, dialer: Dialer) -> Network {
        Network { group: group.to_string(), dialer }
    }
}

impl<C: GroupTypes> RaftNetworkFactory<C> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: PeerId, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            target,
            group: self.group.clone(),
            client: self.dialer.client(&node.addr).map_err(|e| e.to_string()),
        }
    }
}

/// openraft's connection to one peer, for one group.
#[derive(Debug)]
pub(crate) struct PeerConnection {
    target: PeerId,
    group: String,
    /// A URI that does not parse fails every call as unreachable.
    client: Result<RaftClient<Channel>, String>,
}

fn unreachable(reason: impl std::fmt::Display) -> Unreachable {
    Unreachable::new(&std::io::Error::new(std::io::ErrorKind::NotConnected, reason.to_string()))
}

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        request: &Req,
        option: &RPCOption,
        method: Method,
    ) -> Result<Resp, RPCError<PeerId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = self.client.as_mut().map_err(|e| RPCError::Unreachable(unreachable(e)))?;
        let mut json = Json { to: self.target, ..to_group(&self.group, request) };
        let start = tokio::time::Instant::now();
        let answer = loop {
            // Only a vote is asked again (below): the other messages, large ones among
            // them, are sent without a copy.
            let body = if matches!(method, Method::Vote) { json.clone() } else { std::mem::take(&mut json) };
            let call = async {
                match method {
                    Method::Append => client.append_entries(body).await,
                    Method::Vote => client.vote(body).await,
                    Method::Snapshot => client.install_snapshot(body).await,
                }
            };
            match tokio::time::timeout_at(start + option.hard_ttl(), call).await {
                Err(_) => return Err(RPCError::Unreachable(unreachable("timed out"))),
                // A vote for a group the peer has not opened yet: the replicas of a new
                // group open it as each applies the metadata, moments apart, and the
                // first to stand for election would otherwise count the others as down
                // (openraft logs each such vote as an error). Ask again until the
                // vote's soft deadline; past it the peer is reported unreachable.
                Ok(Err(status))
                    if matches!(method, Method::Vote)
                        && status.code() == tonic::Code::NotFound
                        && start.elapsed() + VOTE_RETRY < option.soft_ttl() =>
                {
                    tokio::time::sleep(VOTE_RETRY).await;
                }
                Ok(Err(status))
                    if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::NotFound) =>
                {
                    // Down, or up without this group yet (a replica still starting).
                    return Err(RPCError::Unreachable(unreachable(status.message())));
                }
                Ok(Err(status)) => return Err(RPCError::Network(NetworkError::new(&status))),
                Ok(Ok(answer)) => break answer.into_inner(),
            }
        };
        match decode::<Result<Resp, E>>(&answer) {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

/// The entries one append message carries at most, in bytes of JSON (one entry
/// larger than this goes alone).
pub(crate) const MESSAGE_BUDGET: usize = 1 << 20;

/// The length of `value`'s JSON, counted without keeping it.
fn encoded_len<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// How long a vote waits before asking again a peer that has not opened the group yet.
const VOTE_RETRY: Duration = Duration::from_millis(25);

/// Which of openraft's messages a call carries.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Method {
    Append,
    Vote,
    Snapshot,
}

impl<C: GroupTypes> RaftNetwork<C> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<PeerId>, RPCError<PeerId, BasicNode, RaftError<PeerId>>> {
        // openraft gives an append one heartbeat interval to be sent, written and
        // synced by the peer: entries past `MESSAGE_BUDGET` bytes go in the next
        // message (at least one goes in each), and the peer's success is reported as
        // the partial success it is.
        let mut rpc = rpc;
        let mut bytes = 0;
        let keep = rpc
            .entries
            .iter()
            .position(|entry| {
                bytes += encoded_len(entry);
                bytes > MESSAGE_BUDGET
            })
            .map_or(rpc.entries.len(), |over| over.max(1));
        if keep == rpc.entries.len() {
            return self.call(&rpc, &option, Method::Append).await;
        }
        rpc.entries.truncate(keep);
        let sent = rpc.entries.last().map(|entry| entry.log_id);
        Ok(match self.call(&rpc, &option, Method::Append).await? {
            AppendEntriesResponse::Success => AppendEntriesResponse::PartialSuccess(sent),
            other => other,
        })
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<PeerId>,
        RPCError<PeerId, BasicNode, RaftError<PeerId, InstallSnapshotError>>,
    > {
        self.call(&rpc, &option, Method::Snapshot).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<PeerId>,
        option: RPCOption,
    ) -> Result<VoteResponse<PeerId>, RPCError<PeerId, BasicNode, RaftError<PeerId>>> {
        self.call(&rpc, &option, Method::Vote).await
    }
}

/// A group's side of the internal service: openraft's three messages, and a proposal
/// carried out if this node leads the group. Registered with the node's service by
/// group name.
#[tonic::async_trait]
pub(crate) trait GroupService: Send + Sync + 'static {
    /// One of openraft's messages for this group's Raft.
    async fn message(&self, method: Method, body: &[u8]) -> Result<Json, serde_json::Error>;
    /// Carries out a proposal if this node leads the group (one hop: a proposal
    /// forwarded here is not forwarded again); answers `Result<Answer, String>`.
    async fn propose(&self, body: &[u8]) -> Result<Json, serde_json::Error>;
    /// Adds or removes a replica (a [`crate::ReplicaChange`]) if this node leads the
    /// group (one hop, like a proposal); answers `Result<(), String>`.
    async fn change_replicas(&self, body: &[u8]) -> Result<Json, serde_json::Error> {
        let _ = body;
        Ok(encode(&Err::<(), _>("the metadata's peers change by joining and removal".to_string())))
    }
    /// Answers a read of this node's replica (`Result<Value, String>`).
    async fn read(&self, body: &[u8]) -> Result<Json, serde_json::Error> {
        let _ = body;
        Ok(encode(&Err::<serde_json::Value, _>("the metadata serves no reads".to_string())))
    }
}

/// openraft's three messages, handed to a group's Raft.
pub(crate) async fn raft_message<C: GroupTypes>(
    raft: &openraft::Raft<C>,
    method: Method,
    body: &[u8],
) -> Result<Json, serde_json::Error> {
    Ok(match method {
        Method::Append => encode(&raft.append_entries(serde_json::from_slice(body)?).await),
        Method::Vote => encode(&raft.vote(serde_json::from_slice(body)?).await),
        Method::Snapshot => encode(&raft.install_snapshot(serde_json::from_slice(body)?).await),
    })
}
