"""``sam2kit-mini``: a scaled-down SAM 2.1 that trains on a CPU and ships inside the package.

Same architecture as the official presets, everything narrower: 256 px input, a Hiera trunk of
width 24 with 8 blocks (1, 2, 4, 1), 64-wide neck / decoder / memory attention (2 layers, FFN
256), 32-wide memories. About 2.07 M parameters, 7.9 MiB of float32 weights. The SAM heads keep
the official fixed sizes (decoder MLP 2048, 8 heads, IoU head 256), which is most of the budget.

Every SAM 2.1 behaviour flag keeps its official value, so the model tracks with the same engine
and options as the official checkpoints.
"""

from __future__ import annotations

from ..config import HieraConfig, SAM2Config

__all__ = ["MINI_NAME", "mini_config"]

#: The preset's name (``--checkpoint sam2kit-mini``).
MINI_NAME = "sam2kit-mini"


def mini_config(drop_path_rate: float = 0.0) -> SAM2Config:
    """The ``sam2kit-mini`` configuration.

    Trunk: stages (1, 2, 4, 1) of widths 24 / 48 / 96 / 192 (heads 1 / 2 / 4 / 8), windows 8 / 4 /
    8 / 8 (at 256 px the last two are whole maps: 16 x 16 and 8 x 8 tokens) with block 5 global,
    and an 8 x 8 background position embedding tiled by the 8 x 8 window embedding (64 x 64 tokens).

    Args:
        drop_path_rate: stochastic depth of the trunk's last block, for training (0 at inference).
    """
    trunk = HieraConfig(
        embed_dim=24,
        num_heads=1,
        stages=(1, 2, 4, 1),
        global_att_blocks=(5,),
        window_pos_embed_bkg_spatial_size=(8, 8),
        window_spec=(8, 4, 8, 8),
        drop_path_rate=drop_path_rate,
    )
    return SAM2Config(
        name=MINI_NAME,
        trunk=trunk,
        image_size=256,
        d_model=64,
        mem_dim=32,
        memory_attention_layers=2,
        memory_attention_ffn_dim=256,
    )
