//! The KV cache of batched generation: every layer's keys and values for a batch of rows,
//! preallocated to a capacity so a decode step writes in place instead of concatenating, with
//! the two batch operations generation needs — start every row from a shared prompt prefix, and
//! drop finished rows.
//!
//! Not here: what the rows mean (padding, masks, positions: `generate.rs`).

use candle_core::{Result as CResult, Tensor};

use crate::model::Llama;

/// One layer's keys and values for a batch being generated.
struct LayerKv {
    /// `[B, kv_heads, capacity, head_dim]`, filled up to [`KvCache::len`].
    k: Tensor,
    v: Tensor,
}

/// Keys and values of every layer for a batch, preallocated to a capacity so a decode step
/// writes in place instead of concatenating.
pub struct KvCache {
    layers: Vec<LayerKv>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// Room for `batch` rows of `capacity` positions each.
    pub fn new(model: &Llama, batch: usize, capacity: usize) -> CResult<Self> {
        let cfg = model.config();
        let shape = (batch, cfg.num_key_value_heads, capacity, cfg.head_dim);
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| {
                Ok(LayerKv {
                    k: Tensor::zeros(shape, model.dtype(), model.device())?,
                    v: Tensor::zeros(shape, model.dtype(), model.device())?,
                })
            })
            .collect::<CResult<Vec<_>>>()?;
        Ok(Self {
            layers,
            len: 0,
            capacity,
        })
    }

    /// Marks `t` more positions as filled (after every layer appended them).
    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// Positions filled so far (the same for every row: rows are left-padded).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keeps only the given batch rows (u32 indices), in that order: finished rows leave the
    /// batch so later steps do not compute them.
    pub fn retain_rows(&mut self, rows: &Tensor) -> CResult<()> {
        for l in &mut self.layers {
            l.k = l.k.index_select(rows, 0)?;
            l.v = l.v.index_select(rows, 0)?;
        }
        Ok(())
    }

    /// Starts every row with the positions of `prefix` (a cache of batch one): the keys and
    /// values of a prompt prefix all rows share, computed once.
    pub fn fill_from(&mut self, prefix: &KvCache) -> CResult<()> {
        if self.len != 0 || prefix.len > self.capacity {
            candle_core::bail!(
                "cannot copy a prefix of {} positions into a cache holding {} of {}",
                prefix.len,
                self.len,
                self.capacity
            )
        }
        for (dst, src) in self.layers.iter_mut().zip(&prefix.layers) {
            // One row (the prefix, then the empty rest of the capacity), copied to every row.
            let (b, h, cap, d) = dst.k.dims4()?;
            let rest = Tensor::zeros((1, h, cap - prefix.len, d), dst.k.dtype(), dst.k.device())?;
            let fill = |src: &Tensor| -> CResult<Tensor> {
                let row = Tensor::cat(&[&src.narrow(2, 0, prefix.len)?.contiguous()?, &rest], 2)?;
                row.broadcast_as((b, h, cap, d))?.contiguous()
            };
            dst.k = fill(&src.k)?;
            dst.v = fill(&src.v)?;
        }
        self.len = prefix.len;
        Ok(())
    }

    /// Appends `[B, kv_heads, T, head_dim]` to `layer` and returns views of all positions so far.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> CResult<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        if self.len + t > self.capacity {
            candle_core::bail!(
                "KV cache full: {} + {t} positions exceed its capacity {}",
                self.len,
                self.capacity
            )
        }
        let Some(l) = self.layers.get_mut(layer) else {
            candle_core::bail!("KV cache has no layer {layer}")
        };
        l.k.slice_set(&k.contiguous()?, 2, self.len)?;
        l.v.slice_set(&v.contiguous()?, 2, self.len)?;
        let n = self.len + t;
        Ok((l.k.narrow(2, 0, n)?, l.v.narrow(2, 0, n)?))
    }
}
