"""Attention layers and the two-way transformer of the SAM mask decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocked_attention import blocked_attention, project_heads
from .common import MLP, attention
from .position import apply_rope, axial_rope_angles, rope_rotation


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections and an optional internal downsampling
    of the width (``embedding_dim // downsample_rate``)."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        kv_in_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError("num_heads must divide embedding_dim // downsample_rate")
        kv_in_dim = kv_in_dim or embedding_dim
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, C) -> (B, heads, N, C/heads)
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def _merge_heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, heads, N, D) -> (B, N, heads*D)
        return x.transpose(1, 2).flatten(2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``q`` ``(B, Nq, C)``, ``k`` / ``v`` ``(B, Nk, C_kv)`` -> ``(B, Nq, C)``."""
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(v))
        return self.out_proj(self._merge_heads(attention(q, k, v)))


class RoPEAttention(Attention):
    """Attention with 2D axial rotary position encoding on a square grid of query tokens.

    Keys may hold several grids of the same size one after another (``rope_k_repeat``: memories
    of several frames), followed by ``num_k_exclude_rope`` tokens (object pointers) left unrotated.
    ``dropout`` drops attention weights in train mode only. ``real_rope`` rotates with real
    arithmetic instead of complex numbers (same result, slower; for ONNX export, which has no
    complex numbers).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(embedding_dim, num_heads, downsample_rate, kv_in_dim)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"attention dropout must be in [0, 1), got {dropout}")
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self.dropout_p = dropout
        self.real_rope = False
        #: Inference on the CPU attends over the raw values when they are narrower than a head
        #: and projects afterwards (same result, fewer FLOPs); False forces the projected path.
        self.raw_value_attention = True
        self._rope_cache: dict[tuple[int, str, bool, bool], torch.Tensor] = {}

    def _rope(self, num_tokens: int, device: torch.device) -> torch.Tensor:
        # Tensors made under inference_mode cannot be saved for backward: keep a separate entry for them.
        key = (num_tokens, str(device), torch.is_inference_mode_enabled(), self.real_rope)
        if key not in self._rope_cache:
            side = math.isqrt(num_tokens)
            if side * side != num_tokens:
                raise ValueError(f"RoPE attention expects a square grid of queries, got {num_tokens} tokens")
            angles = axial_rope_angles(self.internal_dim // self.num_heads, side, side, self.rope_theta)
            self._rope_cache[key] = rope_rotation(angles, real=self.real_rope).to(device)
        return self._rope_cache[key]

    def _attends_raw_values(self, q: torch.Tensor, v: torch.Tensor) -> bool:
        """Whether this call takes the raw-value path (see :mod:`.blocked_attention`): values
        narrower than a head, inference on the CPU (no autograd, no dropout, no graph capture)."""
        return (
            self.raw_value_attention
            and v.shape[-1] < self.internal_dim // self.num_heads
            and q.device.type == "cpu"
            and not torch.is_grad_enabled()
            and not (self.training and self.dropout_p > 0.0)
            and not self.real_rope
            and not torch.compiler.is_compiling()
        )

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0
    ) -> torch.Tensor:
        raw_values = self._attends_raw_values(q, v)
        q = self._split_heads(self.q_proj(q))  # (B, h, Nq, D)
        if not raw_values:
            v = self._split_heads(self.v_proj(v))
        num_q = q.shape[-2]
        rotation = self._rope(num_q, q.device)
        q = apply_rope(q, rotation)
        if q.shape[0] != k.shape[0] and not raw_values:  # one query batch entry shared by every key batch entry
            # materialised: the fused CPU kernel runs ~15% slower on a stride-0 batch
            q = q.expand(k.shape[0], -1, -1, -1).contiguous()
        num_k_rope = k.shape[-2] - num_k_exclude_rope
        # The rotated keys and the unrotated tail are projected separately: a slice of one
        # projection is strided across batch entries, which made the rotation ~2x slower with
        # several objects; the parts then go to the kernel (or one concatenation) as they are.
        split = (num_k_rope,) if 0 < num_k_rope < k.shape[-2] else ()
        key_parts = [self._split_heads(self.k_proj(part)) for part in torch.tensor_split(k, split, dim=1)]
        if num_k_rope > 0:
            if num_k_rope != num_q and not self.rope_k_repeat:
                raise ValueError("keys and queries differ in length; rope_k_repeat is off")
            rotated = key_parts[0].unflatten(2, (-1, num_q))  # (B, h, repeats, Nq, D)
            key_parts[0] = apply_rope(rotated, rotation).flatten(2, 3)
        if raw_values:  # softmax(QKᵀ)(M Wᵀ + b) = (softmax(QKᵀ) M) Wᵀ + b: rows of softmax sum to 1
            # the kernel copies the key parts into its own transposed buffer: no concatenation here
            attended = blocked_attention(q, tuple(key_parts), v[:, None])  # (B, h, Nq, C_kv)
            return self.out_proj(self._merge_heads(project_heads(attended, self.v_proj.weight, self.v_proj.bias)))
        k = torch.cat(key_parts, dim=2) if len(key_parts) > 1 else key_parts[0]
        dropout_p = self.dropout_p if self.training else 0.0
        return self.out_proj(self._merge_heads(attention(q, k, v, dropout_p=dropout_p)))


class TwoWayAttentionBlock(nn.Module):
    """Sparse tokens self-attend, cross-attend to the image, run an MLP; then the image attends back
    to the tokens. Post-norm after each step."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2, activation=nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``queries`` ``(B, Nt, C)`` tokens, ``keys`` ``(B, HW, C)`` image; PEs of the same shapes."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))

        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks followed by a final token-to-image attention."""

    def __init__(
        self,
        depth: int = 2,
        embedding_dim: int = 256,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim=mlp_dim,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``image_embedding`` / ``image_pe`` ``(B, C, H, W)``, ``point_embedding`` ``(B, Nt, C)``.

        Returns the processed tokens ``(B, Nt, C)`` and image ``(B, HW, C)``.
        """
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q, k = queries + point_embedding, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
