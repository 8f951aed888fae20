"""Memory attention: conditions the current frame's features on memories of other frames."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .transformer import RoPEAttention


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: RoPE self-attention, RoPE cross-attention to memories, ReLU MLP.

    ``dropout`` (train mode only; the official 0.1) drops the attention weights of both
    attentions, each sub-layer's output before its residual sum, and the MLP's hidden units.
    Dropout has no weights: the state dict is the same for any rate.
    """

    def __init__(
        self,
        d_model: int = 256,
        dim_feedforward: int = 2048,
        num_heads: int = 1,
        kv_in_dim: int = 64,
        rope_theta: float = 10000.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(d_model, num_heads, rope_theta=rope_theta, dropout=dropout)
        self.cross_attn_image = RoPEAttention(
            d_model, num_heads, kv_in_dim=kv_in_dim, rope_theta=rope_theta, rope_k_repeat=True, dropout=dropout
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout_rate = dropout
        self.dropout_self = nn.Dropout(dropout)
        self.dropout_cross = nn.Dropout(dropout)
        self.dropout_hidden = nn.Dropout(dropout)
        self.dropout_mlp = nn.Dropout(dropout)

    @property
    def is_stochastic(self) -> bool:
        """Whether a forward pass draws random numbers (train mode with a dropout rate)."""
        return self.training and self.dropout_rate > 0.0

    def attend_self(self, tgt: torch.Tensor) -> torch.Tensor:
        """The self-attention sub-layer: ``(B, HW, C)`` -> ``(B, HW, C)``."""
        normed = self.norm1(tgt)
        return tgt + self.dropout_self(self.self_attn(normed, normed, normed))

    def attend_memory(
        self, tgt: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor, num_k_exclude_rope: int = 0
    ) -> torch.Tensor:
        """Cross-attention to the memories, then the MLP.

        ``tgt`` ``(B or 1, HW, C)``, ``memory`` / ``memory_pos`` ``(B, M, C_mem)`` -> ``(B, HW, C)``.
        A ``tgt`` of batch 1 is shared by every memory batch entry (its query projection runs once).
        Position encodings enter only the keys (RoPE handles the queries).
        """
        normed = self.norm2(tgt)
        tgt = tgt + self.dropout_cross(
            self.cross_attn_image(normed, memory + memory_pos, memory, num_k_exclude_rope=num_k_exclude_rope)
        )
        normed = self.norm3(tgt)
        # in place: linear1's output has no other use (its backward needs its input, not its output)
        hidden = F.relu(self.linear1(normed), inplace=True)
        return tgt + self.dropout_mlp(self.linear2(self.dropout_hidden(hidden)))

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_k_exclude_rope: int = 0,
    ) -> torch.Tensor:
        """``tgt`` ``(B, HW, C)``, ``memory`` / ``memory_pos`` ``(B, M, C_mem)`` -> ``(B, HW, C)``."""
        return self.attend_memory(self.attend_self(tgt), memory, memory_pos, num_k_exclude_rope)


class MemoryAttention(nn.Module):
    """A stack of :class:`MemoryAttentionLayer` with a final LayerNorm."""

    def __init__(
        self,
        d_model: int = 256,
        num_layers: int = 4,
        dim_feedforward: int = 2048,
        num_heads: int = 1,
        kv_in_dim: int = 64,
        rope_theta: float = 10000.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(d_model, dim_feedforward, num_heads, kv_in_dim, rope_theta, dropout)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def _first_layer(self) -> MemoryAttentionLayer:
        return cast(MemoryAttentionLayer, self.layers[0])

    @property
    def is_stochastic(self) -> bool:
        """Whether a forward pass draws random numbers (train mode with dropout). A query computed
        by :meth:`encode_query` then belongs to one forward pass and one batch entry: it must not
        be shared by several objects or reused."""
        return self._first_layer().is_stochastic

    def encode_query(self, curr: torch.Tensor, curr_pos: torch.Tensor) -> torch.Tensor:
        """Everything before the first memory is seen: the scaled position encoding and the first
        layer's self-attention. ``curr`` / ``curr_pos`` ``(HW, B, C)`` -> ``(B, HW, C)``.

        It depends on the frame only, so one result serves every object tracked on that frame.
        """
        return self._first_layer().attend_self((curr + 0.1 * curr_pos).transpose(0, 1))

    def forward(
        self,
        curr: torch.Tensor | None,
        curr_pos: torch.Tensor | None,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_obj_ptr_tokens: int = 0,
        query: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sequence-first tensors, as the model keeps them.

        Args:
            curr: ``(HW, B, C)`` current frame features; ``curr_pos`` its position encoding.
            memory: ``(M, B, C_mem)`` spatial memories followed by ``num_obj_ptr_tokens`` pointer
                tokens; ``memory_pos`` their encodings.
            query: the output of :meth:`encode_query` ``(B or 1, HW, C)``, given instead of
                ``curr`` / ``curr_pos`` when it was already computed for this frame; batch 1 is
                shared by all B memory entries.
        Returns:
            ``(HW, B, C)`` memory-conditioned features.
        """
        if query is None:
            query = self.encode_query(curr, curr_pos)  # type: ignore[arg-type]
        memory = memory.transpose(0, 1)
        memory_pos = memory_pos.transpose(0, 1)
        output = self._first_layer().attend_memory(query, memory, memory_pos, num_k_exclude_rope=num_obj_ptr_tokens)
        for layer in self.layers[1:]:
            output = layer(output, memory, memory_pos, num_k_exclude_rope=num_obj_ptr_tokens)
        return self.norm(output).transpose(0, 1)
