//! Link groups (payload links): a walk filtered by a value that has links stays among
//! the points holding it and finds their nearest; the links survive bytes and growth;
//! bad calls are typed errors.

use braid_core::{Cardinality, DenseVectors, Metric, OffsetFilter, PointOffset, VectorSource};
use braid_distance::{Kernel, prepare};
use braid_hnsw::{DecodeError, Hnsw, HnswConfig, HnswError, SearchPath};
use braid_testkit::Rng;

const KEY: u64 = 0xC0FFEE;

/// The points whose value (one per point, `values[offset]`) is `value`, listed like a
/// payload index's bitmap, naming `group` as its link group.
struct Valued {
    list: Vec<u32>,
    values: Vec<u8>,
    value: u8,
    group: Option<u64>,
}

impl Valued {
    fn new(values: &[u8], value: u8, group: Option<u64>) -> Valued {
        let list = (0..values.len() as u32).filter(|&o| values[o as usize] == value).collect();
        Valued { list, values: values.to_vec(), value, group }
    }
}

impl OffsetFilter for Valued {
    fn matches(&self, offset: PointOffset) -> bool {
        self.values.get(offset.index()) == Some(&self.value)
    }
    fn estimate(&self) -> Cardinality {
        Cardinality::exact(self.list.len())
    }
    fn for_each_match(&self, f: &mut dyn FnMut(PointOffset)) -> bool {
        self.list.iter().for_each(|&o| f(PointOffset(o)));
        true
    }
    fn link_group(&self) -> Option<u64> {
        self.group
    }
}

/// `n` unit vectors around 12 centres, and a value 0..`kinds` per point drawn
/// independently of the vector (so a value's points are scattered over every cluster).
fn data(seed: u64, n: usize, dim: usize, kinds: u8) -> (DenseVectors, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let centres: Vec<Vec<f32>> =
        (0..12).map(|_| (0..dim).map(|_| rng.uniform() * 2.0 - 1.0).collect()).collect();
    let mut rows = DenseVectors::new(dim);
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let v: Vec<f32> = centres[i % 12].iter().map(|c| c + 0.35 * (rng.uniform() - 0.5)).collect();
        rows.push(&prepare(Metric::Cosine, dim, &v).unwrap());
        values.push((rng.next_u64() % u64::from(kinds)) as u8);
    }
    (rows, values)
}

fn brute(rows: &DenseVectors, query: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let kernel = Kernel::new(Metric::Cosine);
    let mut all: Vec<(f32, u32)> = (0..rows.len() as u32)
        .filter(|&o| keep(o))
        .map(|o| (kernel.score(query, rows.vector(PointOffset(o))), o))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, o)| o).collect()
}

/// Links every node in the group by its value.
fn link_all(graph: &Hnsw, rows: &DenseVectors, values: &[u8], kinds: u8) {
    let blocks: Vec<Valued> = (0..kinds).map(|v| Valued::new(values, v, None)).collect();
    for o in 0..rows.len() as u32 {
        let block: &dyn OffsetFilter = &blocks[values[o as usize] as usize];
        graph.link_in_group(rows, KEY, PointOffset(o), &[block], false).unwrap();
    }
}

fn built(seed: u64, n: usize, kinds: u8) -> (Hnsw, DenseVectors, Vec<u8>) {
    let (rows, values) = data(seed, n, 16, kinds);
    let mut graph =
        Hnsw::build(&rows, Metric::Cosine, HnswConfig { m: 8, ef_construct: 64, seed }, 2).unwrap();
    graph.add_link_group(KEY, 8).unwrap();
    link_all(&graph, &rows, &values, kinds);
    (graph, rows, values)
}

/// Mean recall@10 at `ef` 64 of filtered searches for each value over held-out points
/// drawn around other centres (far from every cluster, the hard case for where a walk
/// starts: a group walk seeded on layer 1 recalled 0.947 here at `ef` 32 where one
/// seeded by a layer-0 beam recalled 0.98, for about the same distances).
fn filtered_recall(graph: &Hnsw, rows: &DenseVectors, values: &[u8], kinds: u8, group: Option<u64>) -> f64 {
    let (queries, _) = data(99, 30, rows.dim(), kinds);
    let mut total = 0.0;
    let mut count = 0.0;
    for q in 0..queries.len() as u32 {
        let query = queries.vector(PointOffset(q));
        let filter = Valued::new(values, (q % u32::from(kinds)) as u8, group);
        let hits = graph.search(rows, query, 10, 64, Some(&filter)).unwrap();
        assert!(hits.iter().all(|h| filter.matches(h.offset)), "only matching points are returned");
        let truth = brute(rows, query, 10, |o| filter.matches(PointOffset(o)));
        total += hits.iter().filter(|h| truth.contains(&h.offset.0)).count() as f64 / truth.len() as f64;
        count += 1.0;
    }
    total / count
}

#[test]
fn a_walk_along_the_group_finds_the_values_nearest() {
    let (graph, rows, values) = built(3, 4000, 10);
    let linked = filtered_recall(&graph, &rows, &values, 10, Some(KEY));
    assert!(linked >= 0.95, "recall@10 along the group {linked}");
    // A filter naming a group the graph does not have walks as before.
    let other = filtered_recall(&graph, &rows, &values, 10, Some(KEY + 1));
    assert!(other >= 0.8, "recall@10 of the two-hop walk {other}");
    // Every node holds links to points of its own value only.
    let blocks: Vec<Valued> = (0..10).map(|v| Valued::new(&values, v, Some(KEY))).collect();
    let query = rows.vector(PointOffset(17)).to_vec();
    let hits = graph.search(&rows, &query, 1, 32, Some(&blocks[values[17] as usize])).unwrap();
    assert_eq!(hits[0].offset, PointOffset(17), "a point is its own nearest along its group");
}

/// A value held only by the points of one cluster, searched from queries in the
/// other clusters: the nodes of layer 1 nearest such a query reach none of its points
/// within two hops, so the search must fall back (to the layer-0 seed beam, then to a
/// plain walk) and still return the value's nearest, never a short or foreign answer.
#[test]
fn a_value_far_from_the_query_is_still_found_along_its_group() {
    let (rows, mut values) = data(7, 4000, 16, 2);
    // `data` puts point i in cluster i % 12: value 1 for cluster 0 only (~2.5 %).
    for (i, v) in values.iter_mut().enumerate() {
        *v = u8::from(i % 12 == 0);
    }
    let mut graph =
        Hnsw::build(&rows, Metric::Cosine, HnswConfig { m: 8, ef_construct: 64, seed: 7 }, 2).unwrap();
    graph.add_link_group(KEY, 8).unwrap();
    link_all(&graph, &rows, &values, 2);
    let filter = Valued::new(&values, 1, Some(KEY));
    let mut recall = 0.0;
    let far: Vec<u32> = (0..rows.len() as u32).filter(|o| o % 12 == 5).take(20).collect();
    for &q in &far {
        let query = rows.vector(PointOffset(q)).to_vec();
        let hits = graph.search(&rows, &query, 10, 32, Some(&filter)).unwrap();
        assert_eq!(hits.len(), 10, "a full answer from query {q}");
        assert!(hits.iter().all(|h| filter.matches(h.offset)), "only the value's points from query {q}");
        let truth = brute(&rows, &query, 10, |o| filter.matches(PointOffset(o)));
        recall += hits.iter().filter(|h| truth.contains(&h.offset.0)).count() as f64 / 10.0;
    }
    recall /= far.len() as f64;
    assert!(recall >= 0.9, "recall@10 of a far value along its group {recall}");
}

/// Found and chosen by one-byte codes alone (as graph inserts are), a value's links
/// answer as links found by the rows: three values of 2,500 points each (past
/// the exact scan of small values, so each is walked), both graphs built each way.
#[test]
fn a_group_linked_by_codes_answers_as_one_linked_by_rows() {
    let kinds = 3;
    let (rows, values) = data(11, 7500, 64, kinds);
    let codes = braid_distance::Codes::from_source(Metric::Cosine, &rows).unwrap();
    let blocks: Vec<Valued> = (0..kinds).map(|v| Valued::new(&values, v, None)).collect();
    let mut recalls = Vec::new();
    for codes in [None, Some(&codes)] {
        let mut graph =
            Hnsw::new(Metric::Cosine, 64, HnswConfig { m: 8, ef_construct: 64, seed: 11 }, rows.len())
                .unwrap();
        graph.insert_all_coded(&rows, codes, 0..rows.len() as u32, 1).unwrap();
        graph.add_link_group(KEY, 8).unwrap();
        for o in 0..rows.len() as u32 {
            let block: &dyn OffsetFilter = &blocks[values[o as usize] as usize];
            graph.link_in_group_coded(&rows, codes, KEY, PointOffset(o), &[block], false).unwrap();
            assert!(
                graph
                    .group_links(KEY, PointOffset(o))
                    .iter()
                    .all(|&n| values[n as usize] == values[o as usize])
            );
        }
        recalls.push(filtered_recall(&graph, &rows, &values, kinds, Some(KEY)));
    }
    let (by_rows, by_codes) = (recalls[0], recalls[1]);
    // 64-d points in wide clusters, searched at ef 64: ~0.89 either way.
    assert!(by_codes >= 0.75 && by_codes >= by_rows - 0.03, "linked by codes {by_codes}, by rows {by_rows}");
}

#[test]
fn the_planner_prices_a_group_walk_below_a_two_hop_walk() {
    let (graph, _, _) = built(5, 3000, 10);
    let estimate = Some(Cardinality::exact(300));
    let two_hop = graph.choose_path_priced(64, estimate, 1.0, None);
    let linked = graph.choose_path_priced(64, estimate, 1.0, Some(KEY));
    let missing = graph.choose_path_priced(64, estimate, 1.0, Some(KEY + 1));
    assert!(linked.graph_cost < two_hop.graph_cost);
    assert_eq!(missing.graph_cost, two_hop.graph_cost);
    assert_eq!(graph.choose_path_priced(64, None, 1.0, Some(KEY)).path, SearchPath::Graph);
}

#[test]
fn groups_survive_bytes_and_growth() {
    let (mut graph, rows, values) = built(7, 1500, 6);
    assert_eq!(graph.link_groups(), vec![(KEY, 8)]);
    let bytes = graph.to_bytes();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 3);
    let decoded = Hnsw::from_bytes(&bytes).unwrap();
    assert_eq!(decoded.link_groups(), vec![(KEY, 8)]);
    assert_eq!(decoded.to_bytes(), bytes);
    let (queries, _) = data(11, 10, 16, 6);
    for q in 0..10u32 {
        let filter = Valued::new(&values, (q % 6) as u8, Some(KEY));
        let query = queries.vector(PointOffset(q));
        assert_eq!(
            graph.search(&rows, query, 10, 32, Some(&filter)).unwrap(),
            decoded.search(&rows, query, 10, 32, Some(&filter)).unwrap()
        );
    }
    graph.grow(4000).unwrap();
    assert_eq!(graph.link_groups(), vec![(KEY, 8)]);
    let grown = graph.to_bytes();
    assert_eq!(Hnsw::from_bytes(&grown).unwrap().to_bytes(), grown);
    assert_eq!(grown, bytes, "growing adds empty slots only, which the bytes trim");
    // The fuzz seed with a link group (version 2, as written before layer 0 was
    // aligned) still reads; written again it is version 3, which reads back the same.
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/hnsw_decode/grouped");
    let seed = std::fs::read(seed).unwrap();
    assert_eq!(u32::from_le_bytes(seed[8..12].try_into().unwrap()), 2);
    let again = Hnsw::from_bytes(&seed).unwrap();
    assert_eq!(again.link_groups(), vec![(KEY, 1)]);
    let v3 = again.to_bytes();
    assert_eq!(Hnsw::from_bytes(&v3).unwrap().to_bytes(), v3);
    // Without groups: a group count of 0.
    assert!(graph.remove_link_group(KEY));
    assert!(!graph.remove_link_group(KEY));
    let plain = graph.to_bytes();
    assert_eq!(u32::from_le_bytes(plain[8..12].try_into().unwrap()), 3);
    assert!(Hnsw::from_bytes(&plain).unwrap().link_groups().is_empty());
}

/// Re-checksums `bytes` after an edit, so that decoding reaches the structural checks.
fn reseal(bytes: &mut [u8]) {
    let end = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn a_corrupt_group_is_a_typed_error() {
    let (rows, _) = data(13, 40, 4, 2);
    let mut graph =
        Hnsw::build(&rows, Metric::Cosine, HnswConfig { m: 4, ef_construct: 16, seed: 1 }, 1).unwrap();
    graph.add_link_group(KEY, 2).unwrap();
    let bytes = graph.to_bytes();
    // The group section: key u64, m0 u32, then 40 × 5 slots, then the checksum.
    let section = bytes.len() - 4 - 40 * 5 * 4;
    let mut bad = bytes.clone();
    bad[section..section + 4].copy_from_slice(&1u32.to_le_bytes()); // node 0's count
    bad[section + 4..section + 8].copy_from_slice(&40u32.to_le_bytes()); // past the nodes
    reseal(&mut bad);
    assert!(matches!(Hnsw::from_bytes(&bad), Err(DecodeError::Corrupt { .. })));
    let mut bad = bytes.clone();
    bad[section - 4..section].copy_from_slice(&3u32.to_le_bytes()); // an odd m0
    reseal(&mut bad);
    assert!(matches!(
        Hnsw::from_bytes(&bad),
        Err(DecodeError::Corrupt { .. }) | Err(DecodeError::Truncated { .. })
    ));
    // Version 2 with no groups is not how any graph is written.
    let mut plain = Hnsw::build(&rows, Metric::Cosine, HnswConfig { m: 4, ef_construct: 16, seed: 1 }, 1)
        .unwrap()
        .to_bytes();
    plain[8..12].copy_from_slice(&2u32.to_le_bytes());
    let end = plain.len() - 4;
    plain.splice(end..end, 0u32.to_le_bytes());
    reseal(&mut plain);
    assert!(matches!(Hnsw::from_bytes(&plain), Err(DecodeError::Corrupt { .. })));
    let mut bad = bytes.clone();
    bad.truncate(bytes.len() - 12);
    bad.extend_from_slice(&[0; 4]);
    reseal(&mut bad);
    assert!(Hnsw::from_bytes(&bad).is_err());
}

#[test]
fn bad_calls_are_typed_errors() {
    let (rows, values) = data(17, 100, 4, 3);
    let mut graph =
        Hnsw::new(Metric::Cosine, 4, HnswConfig { m: 4, ef_construct: 16, seed: 1 }, 200).unwrap();
    graph.insert_all(&rows, 0..50, 1).unwrap();
    let block = Valued::new(&values, 0, None);
    assert!(matches!(
        graph.link_in_group(&rows, KEY, PointOffset(1), &[&block], false),
        Err(HnswError::UnknownGroup { key: KEY })
    ));
    assert!(matches!(graph.add_link_group(KEY, 0), Err(HnswError::InvalidConfig { .. })));
    graph.add_link_group(KEY, 4).unwrap();
    assert!(matches!(
        graph.link_in_group(&rows, KEY, PointOffset(60), &[&block], false),
        Err(HnswError::NotInserted { offset: 60 })
    ));
    assert!(matches!(
        graph.link_in_group(&rows, KEY, PointOffset(150), &[&block], false),
        Err(HnswError::NotInserted { offset: 150 })
    ));
}

#[test]
fn a_point_with_two_values_is_linked_in_both_and_relinked_on_change() {
    let (rows, values) = data(19, 600, 8, 4);
    let mut graph =
        Hnsw::build(&rows, Metric::Cosine, HnswConfig { m: 6, ef_construct: 32, seed: 2 }, 1).unwrap();
    graph.add_link_group(KEY, 6).unwrap();
    link_all(&graph, &rows, &values, 4);
    let probe = 5u32;
    let others: Vec<u8> = (0..4).filter(|&v| v != values[probe as usize]).collect();
    let a = Valued::new(&values, others[0], None);
    let b = Valued::new(&values, others[1], None);
    graph.link_in_group(&rows, KEY, PointOffset(probe), &[&a, &b], true).unwrap();
    // Along either value's group the probe is its own nearest point (the filter passes
    // it as holding both values).
    for value in [others[0], others[1]] {
        let mut holds = values.clone();
        holds[probe as usize] = value;
        let filter = Valued::new(&holds, value, Some(KEY));
        let hits = graph.search(&rows, rows.vector(PointOffset(probe)), 1, 32, Some(&filter)).unwrap();
        assert_eq!(hits[0].offset, PointOffset(probe));
    }
}
