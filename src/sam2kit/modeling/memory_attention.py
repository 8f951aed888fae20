"""Memory attention: conditions the current frame's features on memories of other frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .transformer import RoPEAttention


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: RoPE self-attention, RoPE cross-attention to memories, ReLU MLP."""

    def __init__(
        self,
        d_model: int = 256,
        dim_feedforward: int = 2048,
        num_heads: int = 1,
        kv_in_dim: int = 64,
        rope_theta: float = 10000.0,
    ) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(d_model, num_heads, rope_theta=rope_theta)
        self.cross_attn_image = RoPEAttention(
            d_model, num_heads, kv_in_dim=kv_in_dim, rope_theta=rope_theta, rope_k_repeat=True
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_k_exclude_rope: int = 0,
    ) -> torch.Tensor:
        """``tgt`` ``(B, HW, C)``, ``memory`` / ``memory_pos`` ``(B, M, C_mem)`` -> ``(B, HW, C)``.

        Position encodings enter only the cross-attention keys (RoPE handles the rest).
        """
        normed = self.norm1(tgt)
        tgt = tgt + self.self_attn(normed, normed, normed)
        normed = self.norm2(tgt)
        tgt = tgt + self.cross_attn_image(
            normed, memory + memory_pos, memory, num_k_exclude_rope=num_k_exclude_rope
        )
        normed = self.norm3(tgt)
        return tgt + self.linear2(F.relu(self.linear1(normed)))


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
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(d_model, dim_feedforward, num_heads, kv_in_dim, rope_theta)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        curr: torch.Tensor,
        curr_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_obj_ptr_tokens: int = 0,
    ) -> torch.Tensor:
        """Sequence-first tensors, as the model keeps them.

        Args:
            curr: ``(HW, B, C)`` current frame features; ``curr_pos`` its position encoding.
            memory: ``(M, B, C_mem)`` spatial memories followed by ``num_obj_ptr_tokens`` pointer
                tokens; ``memory_pos`` their encodings.
        Returns:
            ``(HW, B, C)`` memory-conditioned features.
        """
        output = (curr + 0.1 * curr_pos).transpose(0, 1)
        memory = memory.transpose(0, 1)
        memory_pos = memory_pos.transpose(0, 1)
        for layer in self.layers:
            output = layer(output, memory, memory_pos, num_k_exclude_rope=num_obj_ptr_tokens)
        return self.norm(output).transpose(0, 1)
