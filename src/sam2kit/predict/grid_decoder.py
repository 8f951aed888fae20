"""The mask decoder for a grid of single-click prompts on one image, re-associated for speed.

The automatic mask generator decodes hundreds of one-click prompts against the same image. This
computes what :class:`~sam2kit.modeling.mask_decoder.MaskDecoder` computes for them (multimask
output, no mask prompt) with about half the arithmetic; see :class:`GridPointDecoder`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F

from ..modeling.common import LayerNorm2d
from ..modeling.mask_decoder import MaskDecoder
from ..modeling.sam2 import SAM2Model
from ..modeling.transformer import TwoWayAttentionBlock, TwoWayTransformer

__all__ = ["GridPointDecoder"]

#: Prompts per output-upscaling chunk (each holds (4h*4w, C/8) floats: 8 MiB at 1024 px).
UPSCALE_CHUNK_PROMPTS = 16


class GridPointDecoder:
    """The mask decoder for a batch of single-click prompts on one image, re-associated.

    Same function as ``MaskDecoder`` with ``multimask_output=True`` and no mask prompt, computed
    with fewer operations on the image-sized ``(N = h*w, C)`` token maps:

    - Layer 0: the image tokens are still the same for every prompt (image embedding plus the
      no-mask embedding), so their key / value / query projections are computed once per image.
    - Token-to-image attention: ``softmax(Q (X Wk' + bk)') (X Wv' + bv)`` is evaluated as
      ``softmax((Q Wk) X' + Q bk) X Wv' + bv`` (attention rows sum to 1): (heads x tokens) rows
      against X instead of projecting all N image tokens.
    - Image-to-token attention: queries ``X Wq' + bq`` against keys K become ``X (Wq' K') + bq K'``
      and the output projection is folded into the values, ``P (V Wo')``.
    - Output upscaling: both stride-2 transposed convolutions are per-pixel matmuls; their outputs
      stay in a blocked layout ``(i, j, di, dj[, ei, ej], C)`` (the skip features are permuted into
      it once per image), and only the final ``(M, 4h, 4w)`` logits are put in raster order.

    Results equal the plain decoder's up to float rounding (~1e-6 of the logits).
    """

    def __init__(self, model: SAM2Model, image_embed: torch.Tensor, high_res: list[torch.Tensor]) -> None:
        decoder = model.sam_mask_decoder
        prompt_encoder = model.sam_prompt_encoder
        self.decoder = decoder
        self.prompt_encoder = prompt_encoder
        self.transformer: TwoWayTransformer = decoder.transformer
        # Typed views of the layers (an nn.ModuleList / nn.Sequential yields plain Modules).
        self.blocks = [cast(TwoWayAttentionBlock, block) for block in self.transformer.layers]
        channels, self.h, self.w = image_embed.shape[1:]
        no_mask = prompt_encoder.no_mask_embed.weight.reshape(1, channels)
        self.image = image_embed[0].flatten(1).t() + no_mask  # (N, C), as the plain decoder's src
        self.image_pe = prompt_encoder.get_dense_pe()[0].flatten(1).t()  # (N, C)
        image_with_pe = self.image + self.image_pe
        first = self.blocks[0]
        token_to_image = first.cross_attn_token_to_image
        self.shared_k = _split_heads(token_to_image.k_proj(image_with_pe), token_to_image.num_heads)  # (H, N, d)
        self.shared_v = _split_heads(token_to_image.v_proj(self.image), token_to_image.num_heads)
        image_to_token = first.cross_attn_image_to_token
        self.shared_q = _split_heads(image_to_token.q_proj(image_with_pe), image_to_token.num_heads)

        upscaling = list(decoder.output_upscaling)
        deconv1, deconv2 = cast(torch.nn.ConvTranspose2d, upscaling[0]), cast(torch.nn.ConvTranspose2d, upscaling[3])
        self.norm1, self.act1, self.act2 = cast(LayerNorm2d, upscaling[1]), upscaling[2], upscaling[4]
        self.c1, self.c2 = deconv1.out_channels, deconv2.out_channels
        # (C_in, C_out, 2, 2) -> (C_in, (di, dj, C_out)): a stride-2 2x2 transposed conv is a matmul.
        self.deconv1 = deconv1.weight.permute(0, 2, 3, 1).reshape(deconv1.in_channels, 4 * self.c1)
        self.deconv2 = deconv2.weight.permute(0, 2, 3, 1).reshape(deconv2.in_channels, 4 * self.c2)
        bias1, bias2 = deconv1.bias, deconv2.bias
        if bias1 is None or bias2 is None:
            raise ValueError("the decoder's upscaling has no bias; check GridPointDecoder.supports(model) first")
        h, w = self.h, self.w
        if decoder.use_high_res_features:
            feat_s0, feat_s1 = high_res  # (1, c2, 4h, 4w), (1, c1, 2h, 2w)
            skip1 = feat_s1[0] + bias1[:, None, None]
            skip0 = feat_s0[0] + bias2[:, None, None]
            # Raster rows 2i+di (and 4i+2di+ei) -> the blocked layout of the matmul outputs.
            self.skip1 = skip1.view(self.c1, h, 2, w, 2).permute(1, 3, 2, 4, 0).reshape(h * w * 4, self.c1)
            self.skip0 = skip0.view(self.c2, h, 2, 2, w, 2, 2).permute(1, 4, 2, 5, 3, 6, 0).reshape(-1, self.c2)
        else:
            self.skip1 = bias1.expand(h * w * 4, self.c1)
            self.skip0 = bias2.expand(h * w * 16, self.c2)

    @staticmethod
    def supports(model: SAM2Model) -> bool:
        """Whether the model's decoder has the structure this class re-associates."""
        decoder = getattr(model, "sam_mask_decoder", None)
        if not isinstance(decoder, MaskDecoder):
            return False
        transformer = decoder.transformer
        if not isinstance(transformer, TwoWayTransformer) or len(transformer.layers) < 1:
            return False
        upscaling = list(decoder.output_upscaling)
        if len(upscaling) != 5 or not isinstance(upscaling[1], LayerNorm2d):
            return False
        deconvs = [upscaling[0], upscaling[3]]
        return all(
            isinstance(d, torch.nn.ConvTranspose2d) and d.kernel_size == (2, 2) and d.stride == (2, 2)
            and d.padding == (0, 0) and d.bias is not None
            for d in deconvs
        )

    def decode(self, in_points: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """Clicks ``(P, 2)`` in model-input pixels -> IoU predictions ``(P*3,)`` (point-major) and
        a function from mask indices ``(K,)`` to their low-res logits ``(K, 4h, 4w)``."""
        labels = torch.ones((in_points.shape[0], 1), dtype=torch.int32, device=in_points.device)
        sparse, _ = self.prompt_encoder(points=(in_points[:, None], labels), boxes=None, masks=None)
        decoder = self.decoder
        weights = [decoder.iou_token.weight, decoder.mask_tokens.weight]
        if decoder.pred_obj_scores:
            weights.insert(0, decoder.obj_score_token.weight)
        first = 1 if decoder.pred_obj_scores else 0
        output_tokens = torch.cat(weights).unsqueeze(0).expand(sparse.shape[0], -1, -1)
        tokens, image = self._transformer(torch.cat([output_tokens, sparse], dim=1))
        iou_preds = decoder.iou_prediction_head(tokens[:, first])[:, 1:]  # (P, 3)
        mask_tokens = tokens[:, first + 1 : first + 1 + decoder.num_mask_tokens]
        hyper = torch.stack(
            [mlp(mask_tokens[:, i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
        )[:, 1:]  # (P, 3, c2)
        num_masks = hyper.shape[1]

        def low_res_of(index: torch.Tensor) -> torch.Tensor:
            prompts, inverse = torch.unique(index // num_masks, return_inverse=True)
            out = torch.empty((len(index), 4 * self.h, 4 * self.w), device=image.device)
            for start in range(0, len(prompts), UPSCALE_CHUNK_PROMPTS):
                chunk = prompts[start : start + UPSCALE_CHUNK_PROMPTS]
                first_prompt, last_prompt = int(chunk[0]), int(chunk[-1])
                if last_prompt - first_prompt + 1 == len(chunk):  # a view instead of a gather
                    chunk = slice(first_prompt, last_prompt + 1)
                rows = ((inverse >= start) & (inverse < start + UPSCALE_CHUNK_PROMPTS)).nonzero().flatten()
                out[rows] = self._upscale(image[chunk], hyper[chunk], inverse[rows] - start, index[rows] % num_masks)
            return out

        return iou_preds.flatten(), low_res_of

    # ---- transformer
    def _transformer(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, C)`` prompt tokens -> tokens ``(B, T, C)`` and image tokens ``(B, N, C)``."""
        transformer = self.transformer
        token_pe = tokens
        layers = self.blocks
        block = layers[0]
        if block.skip_first_layer_pe:
            queries = block.self_attn(tokens, tokens, tokens)
        else:
            queries = tokens + block.self_attn(tokens + token_pe, tokens + token_pe, tokens)
        queries = block.norm1(queries)
        attended = self._token_to_shared_image(block.cross_attn_token_to_image, queries + token_pe)
        queries = block.norm2(queries + attended)
        queries = block.norm3(queries + block.mlp(queries))
        attended = self._shared_image_to_token(block.cross_attn_image_to_token, queries + token_pe, queries)
        image = block.norm4(attended.add_(self.image))
        for block in layers[1:]:
            q = queries + token_pe
            queries = block.norm1(queries + block.self_attn(q, q, queries))
            image_with_pe = image + self.image_pe
            attended = _token_to_image(block.cross_attn_token_to_image, queries + token_pe, image, image_with_pe)
            queries = block.norm2(queries + attended)
            queries = block.norm3(queries + block.mlp(queries))
            attended = _image_to_token(block.cross_attn_image_to_token, image_with_pe, queries + token_pe, queries)
            image = block.norm4(attended.add_(image))
        image_with_pe = image + self.image_pe
        attended = _token_to_image(transformer.final_attn_token_to_image, queries + token_pe, image, image_with_pe)
        return transformer.norm_final_attn(queries + attended), image

    def _token_to_shared_image(self, attn: Any, q: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, T, C)`` attend to the shared layer-0 image keys / values."""
        batch, num_tokens, _ = q.shape
        heads = attn.num_heads
        query = attn.q_proj(q).view(batch * num_tokens, heads, -1).transpose(0, 1)  # (H, BT, d)
        out = F.scaled_dot_product_attention(query[None], self.shared_k[None], self.shared_v[None])[0]
        return attn.out_proj(out.transpose(0, 1).reshape(batch, num_tokens, -1))

    def _shared_image_to_token(self, attn: Any, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The shared layer-0 image queries attend to each prompt's tokens: ``(B, N, C)``."""
        batch, num_tokens, _ = k.shape
        heads = attn.num_heads
        keys = attn.k_proj(k).view(batch, num_tokens, heads, -1)
        head_dim = keys.shape[-1]
        keys = keys.permute(2, 0, 1, 3).reshape(heads, batch * num_tokens, head_dim) * head_dim**-0.5
        scores = torch.bmm(keys, self.shared_q.transpose(1, 2))  # (H, BT, N)
        probs = scores.view(heads, batch, num_tokens, -1).softmax(dim=2)  # over the tokens
        probs = probs.transpose(0, 1).reshape(batch, heads * num_tokens, -1)  # (B, HT, N)
        return torch.bmm(probs.transpose(1, 2), _values_through_out_proj(attn, v))

    # ---- upscaling
    def _upscale(
        self, image: torch.Tensor, hyper: torch.Tensor, prompt: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Image tokens ``(B, N, C)`` and hypernetwork outputs ``(B, M, c2)`` -> the logits
        ``(K, 4h, 4w)`` of masks ``mask[k]`` of prompts ``prompt[k]`` (both ``(K,)``)."""
        batch, h, w = image.shape[0], self.h, self.w
        x = torch.matmul(image, self.deconv1).view(batch, h * w * 4, self.c1)
        # LayerNorm2d normalises over channels: the last axis here.
        x = self.act1(F.layer_norm(x.add_(self.skip1), (self.c1,), self.norm1.weight, self.norm1.bias, self.norm1.eps))
        x = torch.matmul(x, self.deconv2).view(batch, h * w * 16, self.c2)
        x = self.act2(x.add_(self.skip0))
        logits = torch.bmm(hyper, x.transpose(1, 2))  # (B, M, blocked pixels)
        logits = logits[prompt, mask].view(-1, h, w, 2, 2, 2, 2)  # (K, i, j, di, dj, ei, ej)
        return logits.permute(0, 1, 3, 5, 2, 4, 6).reshape(-1, 4 * h, 4 * w)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(N, H*d)`` -> ``(H, N, d)``."""
    return x.view(x.shape[0], heads, -1).transpose(0, 1)


def _values_through_out_proj(attn: Any, v: torch.Tensor) -> torch.Tensor:
    """Per-head values times the matching block of the output projection, plus 1/H of its bias:
    ``(B, T, C)`` -> ``(B, H*T, C_out)``. Each head's attention weights sum to 1 over the tokens,
    so ``probs @ values`` carries the whole bias."""
    batch, num_tokens, _ = v.shape
    heads = attn.num_heads
    values = attn.v_proj(v).view(batch, num_tokens, heads, -1)
    out_weight = attn.out_proj.weight.view(attn.out_proj.weight.shape[0], heads, -1)  # (C_out, H, d)
    projected = torch.einsum("bthd,chd->bhtc", values, out_weight).reshape(batch, heads * num_tokens, -1)
    return projected + attn.out_proj.bias / heads


def _token_to_image(attn: Any, q: torch.Tensor, image: torch.Tensor, image_with_pe: torch.Tensor) -> torch.Tensor:
    """Tokens ``(B, T, C)`` attend to per-prompt image tokens ``(B, N, C)`` (keys with PE).

    The key bias adds ``q . b_k`` to a whole row of scores, which the softmax over the image
    ignores, so it is left out.
    """
    batch, num_tokens, _ = q.shape
    heads = attn.num_heads
    query = attn.q_proj(q).view(batch, num_tokens, heads, -1)
    head_dim = query.shape[-1]
    k_weight = attn.k_proj.weight.view(heads, head_dim, -1) * head_dim**-0.5  # (H, d, C)
    query_in_image = torch.einsum("bthd,hdc->bhtc", query, k_weight).reshape(batch, heads * num_tokens, -1)
    probs = torch.bmm(query_in_image, image_with_pe.transpose(1, 2)).softmax(dim=-1)  # (B, HT, N)
    mixed = torch.bmm(probs, image).view(batch, heads, num_tokens, -1)  # (B, H, T, C)
    v_weight = attn.v_proj.weight.view(heads, head_dim, -1)
    out = torch.einsum("bhtc,hdc->bthd", mixed, v_weight) + attn.v_proj.bias.view(heads, head_dim)
    return attn.out_proj(out.reshape(batch, num_tokens, -1))


def _image_to_token(attn: Any, image_with_pe: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-prompt image tokens ``(B, N, C)`` attend to the prompt's tokens: ``(B, N, C)``."""
    batch, num_tokens, _ = k.shape
    heads = attn.num_heads
    keys = attn.k_proj(k).view(batch, num_tokens, heads, -1)
    head_dim = keys.shape[-1]
    keys = keys * head_dim**-0.5
    q_weight = attn.q_proj.weight.view(heads, head_dim, -1)  # (H, d, C)
    q_bias = attn.q_proj.bias.view(heads, head_dim)
    keys_in_image = torch.einsum("hdc,bthd->bhtc", q_weight, keys).reshape(batch, heads * num_tokens, -1)
    key_bias = torch.einsum("hd,bthd->bht", q_bias, keys).reshape(batch, heads * num_tokens, 1)
    scores = torch.baddbmm(key_bias, keys_in_image, image_with_pe.transpose(1, 2))  # (B, HT, N)
    probs = scores.view(batch, heads, num_tokens, -1).softmax(dim=2).view(batch, heads * num_tokens, -1)
    return torch.bmm(probs.transpose(1, 2), _values_through_out_proj(attn, v))  # (B, N, C)
