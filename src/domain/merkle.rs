//! Merkle tree hashing of the transparency log, as RFC 9162 (and RFC 6962 before
//! it) defines it: leaves hashed as `SHA-256(0x00 || data)`, interior nodes as
//! `SHA-256(0x01 || left || right)`, a tree of `n` leaves split at the largest power
//! of two below `n`. Inclusion and consistency proofs are planned here as lists of
//! leaf ranges, each the hash of a run of aligned complete subtrees; whoever stores
//! those subtrees (the database, a test's vector) looks them up, so that one proof
//! is one batched read. Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2.

use sha2::{Digest, Sha256};

/// A SHA-256 hash of a leaf, node or tree.
pub type Hash = [u8; 32];

/// The hash of a leaf holding `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// The hash of an interior node over `left` and `right`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: the hash of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A complete, aligned subtree: the `2^level` leaves from `index * 2^level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub level: u32,
    pub index: u64,
}

/// Bits of [`Node::key`] that hold the index: logs up to 2^40 entries.
const INDEX_BITS: u32 = 40;

impl Node {
    /// One integer naming the node, for storage.
    pub fn key(self) -> i64 {
        ((i64::from(self.level)) << INDEX_BITS) | self.index as i64
    }

    pub fn from_key(key: i64) -> Node {
        Node {
            level: (key >> INDEX_BITS) as u32,
            index: (key as u64) & ((1 << INDEX_BITS) - 1),
        }
    }
}

/// The largest power of two strictly below `n` (`n` ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The aligned complete subtrees that make up the leaves `start..end`, largest
/// first, where `start` is a multiple of the largest of them (as every range of the
/// RFC's recursion is). Their hashes folded from the right give the range's hash.
pub fn blocks(start: u64, end: u64) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut at = start;
    let mut left = end - start;
    while left > 0 {
        let level = 63 - left.leading_zeros();
        nodes.push(Node {
            level,
            index: at >> level,
        });
        at += 1 << level;
        left -= 1 << level;
    }
    nodes
}

/// The hash of a range from the hashes of its [`blocks`], in order.
pub fn fold(block_hashes: &[Hash]) -> Hash {
    let mut iter = block_hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |right, left| node_hash(left, &right))
}

/// A proof planned as leaf ranges, each hashed by its [`blocks`], in RFC 9162 order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofPlan {
    pub ranges: Vec<(u64, u64)>,
}

impl ProofPlan {
    /// Every node the proof needs, each once.
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes: Vec<Node> = self.ranges.iter().flat_map(|&(a, b)| blocks(a, b)).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// The proof's hashes, given the hash of each node the plan needs.
    pub fn resolve(&self, lookup: impl Fn(Node) -> Option<Hash>) -> Result<Vec<Hash>, ProofError> {
        self.ranges
            .iter()
            .map(|&(a, b)| {
                let hashes = blocks(a, b)
                    .into_iter()
                    .map(|n| lookup(n).ok_or(ProofError::MissingNode(n)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(fold(&hashes))
            })
            .collect()
    }
}

/// Why a proof cannot be made or does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("entry {index} is not in a tree of {size} entries")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("a consistency proof needs 0 < from ≤ to; got from={from}, to={to}")]
    BadSizes { from: u64, to: u64 },
    #[error("the log holds no node {}/{}", .0.level, .0.index)]
    MissingNode(Node),
    #[error("the proof has {0} hashes, which is not the length this proof needs")]
    WrongLength(usize),
    #[error("the proof does not lead to the root hash")]
    RootMismatch,
    #[error("the proof does not lead from the earlier root hash")]
    OldRootMismatch,
}

/// The plan of the inclusion proof of leaf `index` in a tree of `size` leaves
/// (RFC 9162 §2.1.3.1).
pub fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut ranges = Vec::new();
    path(index, 0, size, &mut ranges);
    Ok(ProofPlan { ranges })
}

fn path(m: u64, start: u64, end: u64, out: &mut Vec<(u64, u64)>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, start, start + k, out);
        out.push((start + k, end));
    } else {
        path(m - k, start + k, end, out);
        out.push((start, start + k));
    }
}

/// The plan of the consistency proof between trees of `from` and `to` leaves
/// (RFC 9162 §2.1.4.1); empty when the sizes are equal.
pub fn consistency_plan(from: u64, to: u64) -> Result<ProofPlan, ProofError> {
    if from == 0 || from > to {
        return Err(ProofError::BadSizes { from, to });
    }
    let mut ranges = Vec::new();
    if from < to {
        subproof(from, 0, to, true, &mut ranges);
    }
    Ok(ProofPlan { ranges })
}

fn subproof(m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<(u64, u64)>) {
    let n = end - start;
    if m == n {
        if !whole {
            out.push((start, end));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, start, start + k, whole, out);
        out.push((start + k, end));
    } else {
        subproof(m - k, start + k, end, false, out);
        out.push((start, start + k));
    }
}

/// Checks that `leaf` is entry `index` of the tree of `size` leaves with `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength(proof.len()));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength(proof.len()));
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `from` leaves with `old_root` is a prefix of the tree
/// of `to` leaves with `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    from: u64,
    to: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if from == 0 || from > to {
        return Err(ProofError::BadSizes { from, to });
    }
    if from == to {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength(proof.len()));
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength(0));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (from - 1, to - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return Err(ProofError::WrongLength(proof.len()));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength(proof.len()));
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a tree: the hashes of its [`blocks`] from the first leaf,
/// largest first. Enough to append leaves and to know the root, so an auditor
/// recomputes a log of any length in constant memory, and the log appends
/// reading only `log2(size)` stored nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of a tree of `size` leaves, given its blocks' hashes.
    pub fn new(size: u64, hashes: Vec<Hash>) -> Result<Frontier, ProofError> {
        if hashes.len() != size.count_ones() as usize {
            return Err(ProofError::WrongLength(hashes.len()));
        }
        Ok(Frontier { size, hashes })
    }

    /// The nodes whose hashes make up the frontier of a tree of `size` leaves.
    pub fn nodes(size: u64) -> Vec<Node> {
        blocks(0, size)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn root(&self) -> Hash {
        fold(&self.hashes)
    }

    /// Appends the leaf with hash `leaf`; returns the complete subtrees it
    /// completes, the leaf itself first.
    pub fn push(&mut self, leaf: Hash) -> Vec<(Node, Hash)> {
        let mut made = vec![(
            Node {
                level: 0,
                index: self.size,
            },
            leaf,
        )];
        let mut current = leaf;
        let mut node = made[0].0;
        while node.index & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                break;
            };
            current = node_hash(&left, &current);
            node = Node {
                level: node.level + 1,
                index: node.index >> 1,
            };
            made.push((node, current));
        }
        self.hashes.push(current);
        self.size += 1;
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
    }

    /// Every complete subtree of `hashes`, as a store would hold them.
    fn store(hashes: &[Hash]) -> std::collections::HashMap<Node, Hash> {
        let mut frontier = Frontier::default();
        hashes.iter().flat_map(|h| frontier.push(*h)).collect()
    }

    #[test]
    fn node_keys_round_trip() {
        for node in [
            Node { level: 0, index: 0 },
            Node {
                level: 20,
                index: 12345,
            },
            Node {
                level: 39,
                index: (1 << 40) - 1,
            },
        ] {
            assert_eq!(Node::from_key(node.key()), node);
        }
    }

    #[test]
    fn proofs_made_from_stored_subtrees_verify_and_wrong_ones_do_not() {
        let all = leaves(70);
        let nodes = store(&all);
        let lookup = |n: Node| nodes.get(&n).copied();
        let mut frontier = Frontier::default();
        let mut roots = vec![empty_root()];
        for leaf in &all {
            frontier.push(*leaf);
            roots.push(frontier.root());
        }
        for size in 1..=70u64 {
            let root = roots[size as usize];
            for index in 0..size {
                let proof = inclusion_plan(index, size).unwrap().resolve(lookup).unwrap();
                verify_inclusion(index, size, &all[index as usize], &proof, &root).unwrap();
                let other = (index + 1) % size;
                if other != index {
                    assert!(verify_inclusion(other, size, &all[index as usize], &proof, &root).is_err());
                }
            }
            for from in 1..=size {
                let proof = consistency_plan(from, size).unwrap().resolve(lookup).unwrap();
                verify_consistency(from, size, &roots[from as usize], &root, &proof).unwrap();
                if from >= 2 {
                    let wrong = roots[from as usize - 1];
                    assert!(verify_consistency(from, size, &wrong, &root, &proof).is_err());
                }
            }
        }
    }

    #[test]
    fn the_frontier_knows_the_blocks_it_holds() {
        let mut frontier = Frontier::default();
        for leaf in leaves(13) {
            frontier.push(leaf);
        }
        assert_eq!(
            Frontier::nodes(13),
            vec![
                Node { level: 3, index: 0 },
                Node { level: 2, index: 2 },
                Node { level: 0, index: 12 }
            ]
        );
        assert_eq!(frontier.hashes.len(), 3);
        let again = Frontier::new(13, frontier.hashes.clone()).unwrap();
        assert_eq!(again.root(), frontier.root());
        assert!(Frontier::new(13, vec![]).is_err());
    }
}
