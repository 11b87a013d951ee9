//! The gRPC API: Qdrant's `qdrant.Collections`, `qdrant.Points` and `qdrant.Qdrant`
//! services (the subset in `proto/qdrant.proto`), answered by the facade. Filters and
//! payloads are mapped to their JSON form and parsed by the same code as REST.

use std::collections::HashMap;
use std::time::Instant;

use braid::{
    Collection, Database, Distance, Fusion, IndexKind, NamedVectors, PointId, PointStruct, PointsSelector,
    Prefetch, Query, QueryPoints, QueryRequest, ScoredPoint, SearchParams, SearchRequest, VectorParams,
    WithPayload, WithVectors,
};
use serde_json::{Map, Value as Json, json};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::ApiError;
use crate::mapping::{self, CollectionSpec, DEFAULT_VECTOR, HnswDiff, QuantizationSpec, SpaceSpec, Spaces};
use crate::rest::AppState;

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub(crate) mod proto {
    tonic::include_proto!("qdrant");
}

use proto::collections_server::{Collections, CollectionsServer};
use proto::points_server::{Points, PointsServer};
use proto::qdrant_server::{Qdrant, QdrantServer};

type Reply<T> = Result<Response<T>, Status>;

fn err(e: impl Into<ApiError>) -> Status {
    e.into().grpc_status()
}

fn bad(why: impl Into<String>) -> Status {
    ApiError::bad_request(why.into()).grpc_status()
}

/// Runs `f` on a blocking thread; the facade's calls are CPU-bound.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Status::internal(format!("the request failed: {e}")))?
}

fn collection(db: &Database, name: &str) -> Result<Collection, Status> {
    db.collection(name).map_err(err)
}

// ---- values, ids, filters ----

fn to_json(v: &proto::Value) -> Json {
    use proto::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::DoubleValue(x)) => json!(x),
        Some(Kind::IntegerValue(x)) => json!(x),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => Json::Object(map_to_json(&s.fields)),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(to_json).collect()),
    }
}

fn map_to_json(m: &HashMap<String, proto::Value>) -> Map<String, Json> {
    m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

fn from_json(v: &Json) -> proto::Value {
    use proto::value::Kind;
    let kind = match v {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(proto::ListValue { values: a.iter().map(from_json).collect() }),
        Json::Object(o) => Kind::StructValue(proto::Struct { fields: json_to_map(o) }),
    };
    proto::Value { kind: Some(kind) }
}

fn json_to_map(o: &Map<String, Json>) -> HashMap<String, proto::Value> {
    o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()
}

fn point_id(id: Option<&proto::PointId>) -> Result<PointId, Status> {
    use proto::point_id::PointIdOptions;
    match id.and_then(|i| i.point_id_options.as_ref()) {
        Some(PointIdOptions::Num(n)) => Ok(PointId::Num(*n)),
        Some(PointIdOptions::Uuid(u)) => convert::point_id(&json!(u)).map_err(err),
        None => Err(bad("a point id is required")),
    }
}

fn id_out(id: PointId) -> proto::PointId {
    use proto::point_id::PointIdOptions;
    proto::PointId {
        point_id_options: Some(match id {
            PointId::Num(n) => PointIdOptions::Num(n),
            PointId::Uuid(u) => PointIdOptions::Uuid(u.hyphenated().to_string()),
        }),
    }
}

fn id_json(id: &proto::PointId) -> Json {
    use proto::point_id::PointIdOptions;
    match &id.point_id_options {
        Some(PointIdOptions::Num(n)) => json!(n),
        Some(PointIdOptions::Uuid(u)) => json!(u),
        None => Json::Null,
    }
}

fn range_json(lt: Option<f64>, gt: Option<f64>, gte: Option<f64>, lte: Option<f64>) -> Json {
    let mut o = Map::new();
    for (k, v) in [("lt", lt), ("gt", gt), ("gte", gte), ("lte", lte)] {
        if let Some(v) = v {
            o.insert(k.into(), json!(v));
        }
    }
    Json::Object(o)
}

fn geo(p: &Option<proto::GeoPoint>) -> Json {
    p.as_ref().map_or(Json::Null, |p| json!({"lon": p.lon, "lat": p.lat}))
}

fn line(l: &proto::GeoLineString) -> Json {
    json!({"points": l.points.iter().map(|p| json!({"lon": p.lon, "lat": p.lat})).collect::<Vec<_>>()})
}

/// A protobuf timestamp as the RFC 3339 string the filter parser reads.
fn rfc3339(t: &prost_types::Timestamp) -> Result<String, Status> {
    let nanos = u32::try_from(t.nanos).map_err(|_| bad("a timestamp with negative nanoseconds"))?;
    chrono::DateTime::from_timestamp(t.seconds, nanos)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .ok_or_else(|| bad(format!("timestamp {}s is out of range", t.seconds)))
}

fn match_json(m: &proto::Match) -> Result<Json, Status> {
    use proto::r#match::MatchValue;
    Ok(match &m.match_value {
        Some(MatchValue::Keyword(s)) => json!({"value": s}),
        Some(MatchValue::Integer(i)) => json!({"value": i}),
        Some(MatchValue::Boolean(b)) => json!({"value": b}),
        Some(MatchValue::Text(s)) => json!({"text": s}),
        Some(MatchValue::Keywords(s)) => json!({"any": s.strings}),
        Some(MatchValue::Integers(i)) => json!({"any": i.integers}),
        Some(MatchValue::ExceptIntegers(i)) => json!({"except": i.integers}),
        Some(MatchValue::ExceptKeywords(s)) => json!({"except": s.strings}),
        Some(MatchValue::Phrase(s)) => json!({"phrase": s}),
        Some(MatchValue::TextAny(s)) => json!({"text_any": s}),
        Some(MatchValue::Prefix(s)) => json!({"prefix": s}),
        None => return Err(bad("a match needs a value")),
    })
}

fn condition_json(c: &proto::Condition) -> Result<Json, Status> {
    use proto::condition::ConditionOneOf;
    Ok(match &c.condition_one_of {
        Some(ConditionOneOf::Field(f)) => {
            let mut o = Map::new();
            o.insert("key".into(), json!(f.key));
            if let Some(m) = &f.r#match {
                o.insert("match".into(), match_json(m)?);
            }
            if let Some(r) = &f.range {
                o.insert("range".into(), range_json(r.lt, r.gt, r.gte, r.lte));
            }
            if let Some(g) = &f.geo_bounding_box {
                o.insert(
                    "geo_bounding_box".into(),
                    json!({"top_left": geo(&g.top_left), "bottom_right": geo(&g.bottom_right)}),
                );
            }
            if let Some(g) = &f.geo_radius {
                o.insert("geo_radius".into(), json!({"center": geo(&g.center), "radius": g.radius}));
            }
            if let Some(g) = &f.geo_polygon {
                let exterior = g.exterior.as_ref().map_or(Json::Null, line);
                o.insert("geo_polygon".into(), json!({"exterior": exterior, "interiors": g.interiors.iter().map(line).collect::<Vec<_>>()}));
            }
            if let Some(d) = &f.datetime_range {
                let mut range = Map::new();
                for (k, t) in [("lt", &d.lt), ("gt", &d.gt), ("gte", &d.gte), ("lte", &d.lte)] {
                    if let Some(t) = t {
                        range.insert(k.into(), json!(rfc3339(t)?));
                    }
                }
                o.insert("range".into(), Json::Object(range));
            }
            if let Some(v) = &f.values_count {
                let f = |x: Option<u64>| x.map(|x| x as f64);
                o.insert("values_count".into(), range_json(f(v.lt), f(v.gt), f(v.gte), f(v.lte)));
            }
            if f.is_empty == Some(true) {
                return Ok(json!({"is_empty": {"key": f.key}}));
            }
            if f.is_null == Some(true) {
                return Ok(json!({"is_null": {"key": f.key}}));
            }
            Json::Object(o)
        }
        Some(ConditionOneOf::IsEmpty(e)) => json!({"is_empty": {"key": e.key}}),
        Some(ConditionOneOf::IsNull(e)) => json!({"is_null": {"key": e.key}}),
        Some(ConditionOneOf::HasId(h)) => json!({"has_id": h.has_id.iter().map(id_json).collect::<Vec<_>>()}),
        Some(ConditionOneOf::HasVector(h)) => json!({"has_vector": h.has_vector}),
        Some(ConditionOneOf::Filter(f)) => filter_json(f)?,
        Some(ConditionOneOf::Nested(n)) => {
            let inner = n.filter.as_ref().map(filter_json).transpose()?.unwrap_or(json!({}));
            json!({"nested": {"key": n.key, "filter": inner}})
        }
        None => return Err(bad("an empty condition")),
    })
}

fn conditions(list: &[proto::Condition]) -> Result<Json, Status> {
    Ok(Json::Array(list.iter().map(condition_json).collect::<Result<_, _>>()?))
}

fn filter_json(f: &proto::Filter) -> Result<Json, Status> {
    let mut o = Map::new();
    if !f.must.is_empty() {
        o.insert("must".into(), conditions(&f.must)?);
    }
    if !f.should.is_empty() {
        o.insert("should".into(), conditions(&f.should)?);
    }
    if !f.must_not.is_empty() {
        o.insert("must_not".into(), conditions(&f.must_not)?);
    }
    if let Some(m) = &f.min_should {
        o.insert(
            "min_should".into(),
            json!({"conditions": conditions(&m.conditions)?, "min_count": m.min_count}),
        );
    }
    Ok(Json::Object(o))
}

fn filter(f: Option<&proto::Filter>) -> Result<Option<braid::Filter>, Status> {
    match f {
        None => Ok(None),
        Some(f) => convert::filter(Some(&filter_json(f)?)).map_err(err),
    }
}

fn selector(s: Option<&proto::PointsSelector>) -> Result<PointsSelector, Status> {
    use proto::points_selector::PointsSelectorOneOf;
    match s.and_then(|s| s.points_selector_one_of.as_ref()) {
        Some(PointsSelectorOneOf::Points(list)) => {
            Ok(PointsSelector::Ids(list.ids.iter().map(|i| point_id(Some(i))).collect::<Result<_, _>>()?))
        }
        Some(PointsSelectorOneOf::Filter(f)) => {
            Ok(PointsSelector::Filter(filter(Some(f))?.unwrap_or_else(|| braid::Filter::must([]))))
        }
        None => Err(bad("select points by ids or by a filter")),
    }
}

// ---- vectors and selectors ----

fn dense(v: &proto::Vector) -> Result<Vec<f32>, Status> {
    if v.indices.is_some() {
        return Err(bad("sparse vectors are not served"));
    }
    match &v.vector {
        Some(proto::vector::Vector::Dense(d)) => Ok(d.data.clone()),
        None => Ok(v.data.clone()),
    }
}

fn vectors(v: Option<&proto::Vectors>) -> Result<NamedVectors, Status> {
    use proto::vectors::VectorsOptions;
    match v.and_then(|v| v.vectors_options.as_ref()) {
        None => Ok(NamedVectors::new()),
        Some(VectorsOptions::Vector(one)) => Ok([(DEFAULT_VECTOR.to_string(), dense(one)?)].into()),
        Some(VectorsOptions::Vectors(named)) => {
            named.vectors.iter().map(|(k, v)| Ok((k.clone(), dense(v)?))).collect()
        }
    }
}

fn vectors_out(v: NamedVectors) -> proto::VectorsOutput {
    use proto::vectors_output::VectorsOptions;
    let one = |data: Vec<f32>| proto::VectorOutput {
        data: Vec::new(),
        vector: Some(proto::vector_output::Vector::Dense(proto::DenseVector { data })),
    };
    let options = if v.len() == 1 && v.contains_key(DEFAULT_VECTOR) {
        VectorsOptions::Vector(one(v.into_values().next().unwrap_or_default()))
    } else {
        VectorsOptions::Vectors(proto::NamedVectorsOutput {
            vectors: v.into_iter().map(|(k, d)| (k, one(d))).collect(),
        })
    };
    proto::VectorsOutput { vectors_options: Some(options) }
}

fn with_payload(s: Option<&proto::WithPayloadSelector>, default: bool) -> WithPayload {
    use proto::with_payload_selector::SelectorOptions;
    match s.and_then(|s| s.selector_options.as_ref()) {
        None => default.into(),
        Some(SelectorOptions::Enable(b)) => (*b).into(),
        Some(SelectorOptions::Include(i)) => WithPayload::Include(i.fields.clone()),
        Some(SelectorOptions::Exclude(e)) => WithPayload::Exclude(e.fields.clone()),
    }
}

fn with_vectors(s: Option<&proto::WithVectorsSelector>) -> WithVectors {
    use proto::with_vectors_selector::SelectorOptions;
    match s.and_then(|s| s.selector_options.as_ref()) {
        None => WithVectors::None,
        Some(SelectorOptions::Enable(b)) => (*b).into(),
        Some(SelectorOptions::Include(i)) => WithVectors::Names(i.names.clone()),
    }
}

fn params(p: Option<&proto::SearchParams>) -> Option<SearchParams> {
    p.map(|p| SearchParams { hnsw_ef: p.hnsw_ef.map(|e| e as usize), exact: p.exact.unwrap_or(false) })
}

fn payload_out(p: Option<Json>) -> HashMap<String, proto::Value> {
    match p {
        Some(Json::Object(o)) => json_to_map(&o),
        _ => HashMap::new(),
    }
}

fn scored(p: ScoredPoint) -> proto::ScoredPoint {
    proto::ScoredPoint {
        id: Some(id_out(p.id)),
        payload: payload_out(p.payload),
        score: p.score,
        version: 0,
        vectors: p.vectors.map(vectors_out),
    }
}

fn retrieved(r: braid::Record) -> proto::RetrievedPoint {
    proto::RetrievedPoint {
        id: Some(id_out(r.id)),
        payload: payload_out(r.payload),
        vectors: r.vectors.map(vectors_out),
    }
}

fn updated(
    state: &AppState,
    wait: Option<bool>,
    started: Instant,
) -> Response<proto::PointsOperationResponse> {
    let id = state.operations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let status = if wait.unwrap_or(false) {
        proto::UpdateStatus::Completed
    } else {
        proto::UpdateStatus::Acknowledged
    };
    Response::new(proto::PointsOperationResponse {
        result: Some(proto::UpdateResult { operation_id: Some(id), status: status as i32 }),
        time: started.elapsed().as_secs_f64(),
    })
}

// ---- search and query ----

fn search_request(s: &proto::SearchPoints) -> Result<SearchRequest, Status> {
    if s.sparse_indices.is_some() {
        return Err(bad("sparse vectors are not served"));
    }
    let using = s.vector_name.clone().unwrap_or_default();
    let mut r = SearchRequest::new(&using, s.vector.clone())
        .limit(s.limit as usize)
        .offset(s.offset.unwrap_or(0) as usize)
        .with_payload(with_payload(s.with_payload.as_ref(), false))
        .with_vectors(with_vectors(s.with_vectors.as_ref()));
    r.filter = filter(s.filter.as_ref())?;
    r.score_threshold = s.score_threshold;
    r.params = params(s.params.as_ref());
    Ok(r)
}

fn query(q: Option<&proto::Query>) -> Result<Option<Query>, Status> {
    use proto::query::Variant;
    let Some(q) = q else { return Ok(None) };
    match &q.variant {
        Some(Variant::Nearest(input)) => match &input.variant {
            Some(proto::vector_input::Variant::Dense(d)) => Ok(Some(Query::Nearest(d.data.clone()))),
            _ => Err(bad("only dense vectors are served as a query (not point ids)")),
        },
        Some(Variant::Fusion(f)) => match proto::Fusion::try_from(*f) {
            Ok(proto::Fusion::Rrf) => Ok(Some(Query::Fusion(Fusion::rrf()))),
            Ok(proto::Fusion::Dbsf) => Ok(Some(Query::Fusion(Fusion::dbsf()))),
            Err(_) => Err(bad(format!("unknown fusion {f}"))),
        },
        Some(Variant::Rrf(r)) => Ok(Some(Query::Fusion(Fusion::Rrf {
            k: r.k.map_or(braid::fusion::qdrant::DEFAULT_RRF_K, |k| k as usize),
            weights: (!r.weights.is_empty()).then(|| r.weights.clone()),
        }))),
        None => Err(bad("this query kind is not served")),
    }
}

fn prefetch(p: &proto::PrefetchQuery) -> Result<Prefetch, Status> {
    Ok(Prefetch {
        query: query(p.query.as_ref())?,
        using: p.using.clone(),
        filter: filter(p.filter.as_ref())?,
        limit: p.limit.map(|l| l as usize),
        params: params(p.params.as_ref()),
        score_threshold: p.score_threshold,
        prefetch: p.prefetch.iter().map(prefetch).collect::<Result<_, _>>()?,
    })
}

fn query_points(q: &proto::QueryPoints) -> Result<QueryPoints, Status> {
    let mut request =
        QueryRequest::fusion(Fusion::rrf(), q.prefetch.iter().map(prefetch).collect::<Result<_, _>>()?);
    request.query = query(q.query.as_ref())?;
    request.using = q.using.clone();
    request.filter = filter(q.filter.as_ref())?;
    request.params = params(q.params.as_ref());
    request.limit = q.limit.map_or(10, |l| l as usize);
    request.offset = q.offset.unwrap_or(0) as usize;
    request.score_threshold = q.score_threshold;
    Ok(QueryPoints {
        request,
        with_payload: with_payload(q.with_payload.as_ref(), false),
        with_vectors: with_vectors(q.with_vectors.as_ref()),
    })
}

// ---- services ----

#[derive(Clone, Debug)]
struct Service(AppState);

#[tonic::async_trait]
impl Qdrant for Service {
    async fn health_check(&self, _: Request<proto::HealthCheckRequest>) -> Reply<proto::HealthCheckReply> {
        Ok(Response::new(proto::HealthCheckReply {
            title: "braid - a vector database with Qdrant's API".into(),
            version: crate::rest::QDRANT_API_VERSION.into(),
            commit: None,
        }))
    }
}

fn quantization_in(q: Option<&proto::QuantizationConfig>) -> QuantizationSpec {
    use proto::quantization_config::Quantization;
    match q.and_then(|q| q.quantization.as_ref()) {
        None => QuantizationSpec::Absent,
        Some(Quantization::Scalar(s)) => QuantizationSpec::Scalar {
            kind: proto::QuantizationType::try_from(s.r#type)
                .map_or_else(|_| format!("{}", s.r#type), |t| t.as_str_name().to_string()),
        },
        Some(other) => QuantizationSpec::Other {
            kinds: vec![
                match other {
                    Quantization::Scalar(_) => "scalar",
                    Quantization::Product(_) => "product",
                    Quantization::Binary(_) => "binary",
                    Quantization::Turboquant(_) => "turboquant",
                }
                .to_string(),
            ],
        },
    }
}

fn hnsw_in(h: Option<&proto::HnswConfigDiff>) -> HnswDiff {
    HnswDiff {
        m: h.and_then(|h| h.m).map(|m| m as usize),
        ef_construct: h.and_then(|h| h.ef_construct).map(|e| e as usize),
    }
}

fn space_in(p: &proto::VectorParams) -> SpaceSpec {
    let distance = proto::Distance::try_from(p.distance).ok().and_then(|d| match d {
        proto::Distance::Cosine => Some(Distance::Cosine),
        proto::Distance::Euclid => Some(Distance::Euclid),
        proto::Distance::Dot => Some(Distance::Dot),
        proto::Distance::Manhattan => Some(Distance::Manhattan),
        _ => None,
    });
    SpaceSpec {
        size: Some(p.size as usize),
        distance,
        hnsw: hnsw_in(p.hnsw_config.as_ref()),
        quantization: quantization_in(p.quantization_config.as_ref()),
    }
}

fn params_out(p: &VectorParams) -> proto::VectorParams {
    let distance = match p.distance {
        Distance::Cosine => proto::Distance::Cosine,
        Distance::Euclid => proto::Distance::Euclid,
        Distance::Dot => proto::Distance::Dot,
        Distance::Manhattan => proto::Distance::Manhattan,
    };
    proto::VectorParams {
        size: p.size as u64,
        distance: distance as i32,
        hnsw_config: Some(proto::HnswConfigDiff {
            m: Some(p.hnsw.m as u64),
            ef_construct: Some(p.hnsw.ef_construct as u64),
            full_scan_threshold: None,
            max_indexing_threads: None,
        }),
        quantization_config: p.keeps_codes().then_some(proto::QuantizationConfig {
            quantization: Some(proto::quantization_config::Quantization::Scalar(proto::ScalarQuantization {
                r#type: proto::QuantizationType::Int8 as i32,
                quantile: None,
                always_ram: Some(true),
            })),
        }),
    }
}

fn schema_type(kind: IndexKind) -> proto::PayloadSchemaType {
    match kind {
        IndexKind::Keyword => proto::PayloadSchemaType::Keyword,
        IndexKind::Integer => proto::PayloadSchemaType::Integer,
        IndexKind::Float => proto::PayloadSchemaType::Float,
        IndexKind::Bool => proto::PayloadSchemaType::Bool,
        IndexKind::Uuid => proto::PayloadSchemaType::Uuid,
        IndexKind::Datetime => proto::PayloadSchemaType::Datetime,
    }
}

#[tonic::async_trait]
impl Collections for Service {
    async fn get(
        &self,
        r: Request<proto::GetCollectionInfoRequest>,
    ) -> Reply<proto::GetCollectionInfoResponse> {
        let (db, started, name) = (self.0.db.clone(), Instant::now(), r.into_inner().collection_name);
        let reported = self.0.reported;
        let info = blocking(move || Ok(collection(&db, &name)?.info())).await?;
        let vectors = &info.config.vectors;
        let vectors_config = match mapping::unnamed(&info.config) {
            Some(p) => proto::vectors_config::Config::Params(params_out(p)),
            None => proto::vectors_config::Config::ParamsMap(proto::VectorParamsMap {
                map: vectors.iter().map(|(k, p)| (k.clone(), params_out(p))).collect(),
            }),
        };
        let first = mapping::reported_hnsw(&info.config);
        let result = proto::CollectionInfo {
            status: proto::CollectionStatus::Green as i32,
            optimizer_status: Some(proto::OptimizerStatus { ok: true, error: String::new() }),
            segments_count: 1,
            config: Some(proto::CollectionConfig {
                params: Some(proto::CollectionParams {
                    shard_number: 1,
                    vectors_config: Some(proto::VectorsConfig { config: Some(vectors_config) }),
                    replication_factor: Some(1),
                    write_consistency_factor: Some(1),
                }),
                hnsw_config: Some(proto::HnswConfigDiff {
                    m: Some(first.m as u64),
                    ef_construct: Some(first.ef_construct as u64),
                    full_scan_threshold: Some(mapping::FULL_SCAN_THRESHOLD),
                    max_indexing_threads: Some(0),
                }),
                optimizer_config: Some(proto::OptimizersConfigDiff {
                    deleted_threshold: Some(reported.deleted_threshold),
                    vacuum_min_vector_number: Some(reported.vacuum_min),
                    default_segment_number: Some(1),
                    flush_interval_sec: Some(reported.flush_interval_sec),
                }),
                wal_config: Some(proto::WalConfigDiff {
                    wal_capacity_mb: Some(reported.wal_capacity_mb),
                    wal_segments_ahead: Some(0),
                }),
            }),
            payload_schema: info
                .payload_schema
                .iter()
                .map(|(k, kind)| {
                    let info = proto::PayloadSchemaInfo {
                        data_type: schema_type(*kind) as i32,
                        points: Some(info.points_count as u64),
                    };
                    (k.clone(), info)
                })
                .collect(),
            points_count: Some(info.points_count as u64),
            indexed_vectors_count: Some(info.indexed_vectors_count.values().sum::<usize>() as u64),
        };
        Ok(Response::new(proto::GetCollectionInfoResponse {
            result: Some(result),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn list(&self, _: Request<proto::ListCollectionsRequest>) -> Reply<proto::ListCollectionsResponse> {
        let (db, started) = (self.0.db.clone(), Instant::now());
        let names = blocking(move || Ok(db.list())).await?;
        let collections = names.into_iter().map(|name| proto::CollectionDescription { name }).collect();
        Ok(Response::new(proto::ListCollectionsResponse {
            collections,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn create(&self, r: Request<proto::CreateCollection>) -> Reply<proto::CollectionOperationResponse> {
        let (db, started, r) = (self.0.db.clone(), Instant::now(), r.into_inner());
        let spaces = r.vectors_config.as_ref().and_then(|v| v.config.as_ref()).map(|c| match c {
            proto::vectors_config::Config::Params(p) => Spaces::Unnamed(space_in(p)),
            proto::vectors_config::Config::ParamsMap(m) => {
                Spaces::Named(m.map.iter().map(|(name, p)| (name.clone(), space_in(p))).collect())
            }
        });
        let config = CollectionSpec {
            hnsw: hnsw_in(r.hnsw_config.as_ref()),
            quantization: quantization_in(r.quantization_config.as_ref()),
            spaces,
        }
        .config()
        .map_err(err)?;
        let name = r.collection_name;
        blocking(move || db.create_collection(&name, config).map_err(err)).await?;
        Ok(Response::new(proto::CollectionOperationResponse {
            result: true,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn delete(&self, r: Request<proto::DeleteCollection>) -> Reply<proto::CollectionOperationResponse> {
        let (db, started, name) = (self.0.db.clone(), Instant::now(), r.into_inner().collection_name);
        let result = blocking(move || db.delete_collection(&name).map_err(err)).await?;
        Ok(Response::new(proto::CollectionOperationResponse {
            result,
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn collection_exists(
        &self,
        r: Request<proto::CollectionExistsRequest>,
    ) -> Reply<proto::CollectionExistsResponse> {
        let (db, started, name) = (self.0.db.clone(), Instant::now(), r.into_inner().collection_name);
        let exists = blocking(move || Ok(db.collection_exists(&name))).await?;
        Ok(Response::new(proto::CollectionExistsResponse {
            result: Some(proto::CollectionExists { exists }),
            time: started.elapsed().as_secs_f64(),
        }))
    }
}

/// A write on a blocking thread, answered with an `UpdateResult`.
async fn write(
    state: &AppState,
    name: String,
    wait: Option<bool>,
    f: impl FnOnce(&Collection) -> Result<(), Status> + Send + 'static,
) -> Reply<proto::PointsOperationResponse> {
    let (db, started) = (state.db.clone(), Instant::now());
    blocking(move || f(&collection(&db, &name)?)).await?;
    Ok(updated(state, wait, started))
}

#[tonic::async_trait]
impl Points for Service {
    async fn upsert(&self, r: Request<proto::UpsertPoints>) -> Reply<proto::PointsOperationResponse> {
        let r = r.into_inner();
        let points = r
            .points
            .iter()
            .map(|p| {
                Ok(PointStruct {
                    id: point_id(p.id.as_ref())?,
                    vectors: vectors(p.vectors.as_ref())?,
                    payload: Json::Object(map_to_json(&p.payload)),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        write(&self.0, r.collection_name, r.wait, move |c| c.upsert(points).map_err(err)).await
    }

    async fn delete(&self, r: Request<proto::DeletePoints>) -> Reply<proto::PointsOperationResponse> {
        let r = r.into_inner();
        let selector = selector(r.points.as_ref())?;
        write(&self.0, r.collection_name, r.wait, move |c| c.delete(selector).map(drop).map_err(err)).await
    }

    async fn get(&self, r: Request<proto::GetPoints>) -> Reply<proto::GetResponse> {
        let (r, db, started) = (r.into_inner(), self.0.db.clone(), Instant::now());
        let ids = r.ids.iter().map(|i| point_id(Some(i))).collect::<Result<Vec<_>, _>>()?;
        let (wp, wv) = (with_payload(r.with_payload.as_ref(), false), with_vectors(r.with_vectors.as_ref()));
        let records =
            blocking(move || collection(&db, &r.collection_name)?.get(&ids, wp, wv).map_err(err)).await?;
        Ok(Response::new(proto::GetResponse {
            result: records.into_iter().map(retrieved).collect(),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn update_vectors(
        &self,
        r: Request<proto::UpdatePointVectors>,
    ) -> Reply<proto::PointsOperationResponse> {
        let r = r.into_inner();
        let updates = r
            .points
            .iter()
            .map(|p| Ok((point_id(p.id.as_ref())?, vectors(p.vectors.as_ref())?)))
            .collect::<Result<Vec<_>, Status>>()?;
        write(&self.0, r.collection_name, r.wait, move |c| c.update_vectors(updates).map_err(err)).await
    }

    async fn delete_vectors(
        &self,
        r: Request<proto::DeletePointVectors>,
    ) -> Reply<proto::PointsOperationResponse> {
        let r = r.into_inner();
        let selector = selector(r.points_selector.as_ref())?;
        let names = r.vectors.map(|v| v.names).unwrap_or_default();
        write(&self.0, r.collection_name, r.wait, move |c| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            c.delete_vectors(selector, &names).map_err(err)
        })
        .await
    }

    async fn set_payload(
        &self,
        r: Request<proto::SetPayloadPoints>,
    ) -> Reply<proto::PointsOperationResponse> {
        let r = r.into_inner();
        let selector = selector(r.points_selector.as_ref())?;
        let payload = Json::Object(map_to_json(&r.payload));
        let key = r.key;
        write(&self.0, r.collection_name, r.wait, move |c| {
            match key {
                Some(key) => c.set_payload_at(selector, &key, payload),
                None => c.set_payload(selector, payload),
            }
            .map_err(err)
        })
        .await
    }

    async fn overwrite_payload(
        &self,
        r: Request<proto::SetPayloadPoints>,
    ) -> Reply<proto::PointsOperationResponse> {
        let r = r.into_inner();
        let selector = selector(r.points_selector.as_ref())?;
        let payload = Json::Object(map_to_json(&r.payload));
        write(&self.0, r.collection_name, r.wait, move |c| {
            c.overwrite_payload(selector, payload).map_err(err)
        })
        .await
    }

    async fn delete_payload(
        &self,
        r: Request<proto::DeletePayloadPoints>,
    ) -> Reply<proto::PointsOperationResponse> {
        let r = r.into_inner();
        let selector = selector(r.points_selector.as_ref())?;
        let keys = r.keys;
        write(&self.0, r.collection_name, r.wait, move |c| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            c.delete_payload(selector, &keys).map_err(err)
        })
        .await
    }

    async fn clear_payload(
        &self,
        r: Request<proto::ClearPayloadPoints>,
    ) -> Reply<proto::PointsOperationResponse> {
        let r = r.into_inner();
        let selector = selector(r.points.as_ref())?;
        write(&self.0, r.collection_name, r.wait, move |c| c.clear_payload(selector).map_err(err)).await
    }

    async fn create_field_index(
        &self,
        r: Request<proto::CreateFieldIndexCollection>,
    ) -> Reply<proto::PointsOperationResponse> {
        let r = r.into_inner();
        let kind = match r.field_type.map(proto::FieldType::try_from) {
            None | Some(Ok(proto::FieldType::Keyword)) => IndexKind::Keyword,
            Some(Ok(proto::FieldType::Integer)) => IndexKind::Integer,
            Some(Ok(proto::FieldType::Float)) => IndexKind::Float,
            Some(Ok(proto::FieldType::Bool)) => IndexKind::Bool,
            Some(Ok(proto::FieldType::Datetime)) => IndexKind::Datetime,
            Some(Ok(proto::FieldType::Uuid)) => IndexKind::Uuid,
            Some(other) => return Err(bad(format!("field type {other:?} is not served"))),
        };
        let field = r.field_name;
        write(&self.0, r.collection_name, r.wait, move |c| c.create_payload_index(&field, kind).map_err(err))
            .await
    }

    async fn delete_field_index(
        &self,
        r: Request<proto::DeleteFieldIndexCollection>,
    ) -> Reply<proto::PointsOperationResponse> {
        let r = r.into_inner();
        let field = r.field_name;
        write(&self.0, r.collection_name, r.wait, move |c| {
            c.delete_payload_index(&field).map(drop).map_err(err)
        })
        .await
    }

    async fn search(&self, r: Request<proto::SearchPoints>) -> Reply<proto::SearchResponse> {
        let (r, db, started) = (r.into_inner(), self.0.db.clone(), Instant::now());
        let request = search_request(&r)?.to_query();
        let (stop, _cancel_on_drop) = crate::rest::request_stop(r.timeout);
        let hits =
            blocking(move || collection(&db, &r.collection_name)?.query_until(request, &stop).map_err(err))
                .await?;
        Ok(Response::new(proto::SearchResponse {
            result: hits.into_iter().map(scored).collect(),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn search_batch(&self, r: Request<proto::SearchBatchPoints>) -> Reply<proto::SearchBatchResponse> {
        let (r, db, started) = (r.into_inner(), self.0.db.clone(), Instant::now());
        let requests = r
            .search_points
            .iter()
            .map(|s| search_request(s).map(|s| s.to_query()))
            .collect::<Result<Vec<_>, _>>()?;
        let (stop, _cancel_on_drop) = crate::rest::request_stop(r.timeout);
        let results = blocking(move || {
            collection(&db, &r.collection_name)?.query_batch_until(requests, &stop).map_err(err)
        })
        .await?;
        let result = results
            .into_iter()
            .map(|hits| {
                Ok(proto::BatchResult { result: hits.map_err(err)?.into_iter().map(scored).collect() })
            })
            .collect::<Result<_, Status>>()?;
        Ok(Response::new(proto::SearchBatchResponse { result, time: started.elapsed().as_secs_f64() }))
    }

    async fn scroll(&self, r: Request<proto::ScrollPoints>) -> Reply<proto::ScrollResponse> {
        let (r, db, started) = (r.into_inner(), self.0.db.clone(), Instant::now());
        let filter = filter(r.filter.as_ref())?;
        let offset = r.offset.as_ref().map(|o| point_id(Some(o))).transpose()?;
        let (wp, wv) = (with_payload(r.with_payload.as_ref(), true), with_vectors(r.with_vectors.as_ref()));
        let limit = r.limit.unwrap_or(10) as usize;
        let (records, next) = blocking(move || {
            collection(&db, &r.collection_name)?.scroll(filter.as_ref(), limit, offset, wp, wv).map_err(err)
        })
        .await?;
        Ok(Response::new(proto::ScrollResponse {
            next_page_offset: next.map(id_out),
            result: records.into_iter().map(retrieved).collect(),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn count(&self, r: Request<proto::CountPoints>) -> Reply<proto::CountResponse> {
        let (r, db, started) = (r.into_inner(), self.0.db.clone(), Instant::now());
        let filter = filter(r.filter.as_ref())?;
        let count =
            blocking(move || collection(&db, &r.collection_name)?.count(filter.as_ref()).map_err(err))
                .await?;
        Ok(Response::new(proto::CountResponse {
            result: Some(proto::CountResult { count: count as u64 }),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn query(&self, r: Request<proto::QueryPoints>) -> Reply<proto::QueryResponse> {
        let (r, db, started) = (r.into_inner(), self.0.db.clone(), Instant::now());
        let request = query_points(&r)?;
        let (stop, _cancel_on_drop) = crate::rest::request_stop(r.timeout);
        let hits =
            blocking(move || collection(&db, &r.collection_name)?.query_until(request, &stop).map_err(err))
                .await?;
        Ok(Response::new(proto::QueryResponse {
            result: hits.into_iter().map(scored).collect(),
            time: started.elapsed().as_secs_f64(),
        }))
    }

    async fn query_batch(&self, r: Request<proto::QueryBatchPoints>) -> Reply<proto::QueryBatchResponse> {
        let (r, db, started) = (r.into_inner(), self.0.db.clone(), Instant::now());
        let requests = r.query_points.iter().map(query_points).collect::<Result<Vec<_>, _>>()?;
        let (stop, _cancel_on_drop) = crate::rest::request_stop(r.timeout);
        let results = blocking(move || {
            collection(&db, &r.collection_name)?.query_batch_until(requests, &stop).map_err(err)
        })
        .await?;
        let result = results
            .into_iter()
            .map(|hits| {
                Ok(proto::BatchResult { result: hits.map_err(err)?.into_iter().map(scored).collect() })
            })
            .collect::<Result<_, Status>>()?;
        Ok(Response::new(proto::QueryBatchResponse { result, time: started.elapsed().as_secs_f64() }))
    }
}

/// Serves the three services on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    connections: std::sync::Arc<tokio::sync::Semaphore>,
    state: AppState,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let key = state.api_key.clone();
    let check = move |request: Request<()>| -> Result<Request<()>, Status> {
        crate::check_api_key(key.as_deref(), |name| {
            request.metadata().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
        })
        .map_err(|e| e.grpc_status())?;
        Ok(request)
    };
    let in_flight = state.in_flight.clone();
    let service = Service(state);
    let incoming = crate::conn::incoming(listener, connections);
    tonic::transport::Server::builder()
        // The same permits as REST: both protocols together serve at most
        // `max_concurrent_requests` at once; more wait.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(in_flight))
        // `Qdrant` holds only HealthCheck, which Qdrant answers without a key.
        .add_service(QdrantServer::new(service.clone()).max_decoding_message_size(max_message_bytes))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            CollectionsServer::new(service.clone()).max_decoding_message_size(max_message_bytes),
            check.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            PointsServer::new(service).max_decoding_message_size(max_message_bytes),
            check,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| format!("gRPC server: {e}"))
}
