"""The memory encoder's CPU speed paths (objects one at a time, channels-last CX blocks) compute
what the plain batched NCHW composition of its layers computes."""

from __future__ import annotations

import torch

from sam2kit.modeling.memory_encoder import MemoryEncoder


def test_objects_one_by_one_equal_the_plain_batched_layers() -> None:
    torch.manual_seed(0)
    encoder = MemoryEncoder(out_dim=16, in_dim=32).eval()
    with torch.no_grad():
        for param in encoder.parameters():
            param.add_(0.05 * torch.randn_like(param))
    # A shared frame feature in the tracker's layout: a (HW, B, C) slice permuted to (1, C, H, W).
    pix_feat = torch.randn(64, 3, 32)[:, :1].permute(1, 2, 0).reshape(1, 32, 8, 8)
    masks = torch.randn(3, 1, 128, 128)
    with torch.inference_mode():
        features, pos = encoder(pix_feat, masks, skip_mask_sigmoid=True)
        fused = encoder.pix_feat_proj(pix_feat.contiguous()) + encoder.mask_downsampler(masks)
        plain = encoder.out_proj(encoder.fuser(fused))
        single = [encoder(pix_feat, masks[i : i + 1], skip_mask_sigmoid=True)[0] for i in range(3)]
    assert features.shape == pos.shape == (3, 16, 8, 8)
    torch.testing.assert_close(features, plain, atol=1e-5, rtol=1e-5)
    for i in range(3):
        torch.testing.assert_close(features[i : i + 1], single[i], atol=0.0, rtol=0.0)
