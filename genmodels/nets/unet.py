"""An EDM / DDPM++-style UNet for images (Karras et al. 2022, ``SongUNet``; Song et al. 2021).

The network ``F(x, c_noise, class)`` maps an NHWC image [B, H, W, C_in] to [B, H, W, C_out].
Under EDM preconditioning (:meth:`genmodels.processes.pfgmpp.PFGMPP.precondition`) it
receives ``c_in x`` and ``c_noise = ln(sigma) / 4``, and the denoiser is
``D = c_skip x + c_out F``.

Architecture (the DDPM++ configuration of EDM's ``SongUNet``, "standard" encoder and
decoder)::

    emb  = SiLU(W_1 SiLU(W_0 (phi(c_noise) + W_y sqrt(label_dim) y)))   # [B, 4 C]
    enc  : conv3x3 -> per level l: [down block (l > 0)] + num_blocks blocks, channels
           C * channel_mult[l]; every output is kept as a skip
    dec  : lowest level: two blocks (the first with attention); per level l from the
           lowest: [up block (l < L - 1)] + (num_blocks + 1) blocks that each take the
           concatenation [h, skip]
    out  = conv3x3(SiLU(GN(h)))                                          # zero-initialised

and every residual block (EDM ``UNetBlock``) is::

    h   = conv3x3_0(SiLU(GN_0(x)))                 # resampled first in up/down blocks
    h   = SiLU(GN_1(h + A e))                      # adaptive_scale=False (DDPM++)
        | SiLU(GN_1(h) (1 + s) + b), (s, b) = A e  # adaptive_scale=True (ADM style)
    h   = conv3x3_1(Dropout(h))                    # zero-initialised
    x'  = (h + skip(x)) / sqrt(2)                  # skip: 1 x 1 conv if shapes differ
    x'' = (x' + proj(Attn(GN_2(x')))) / sqrt(2)    # at attention resolutions; proj zero

Self-attention is single-head by default (``num_heads=1``, as DDPM++).

Differences from EDM's ``SongUNet`` (all deliberate):

- Resampling is 2 x 2 average pooling (down) and nearest-neighbour repetition (up)
  rather than an FIR filter. With DDPM++'s filter ``[1, 1]`` these are the same
  operations, so at even resolutions nothing changes; the NCSN++ filter ``[1, 3, 3, 1]``
  and the "skip" / "residual" encoder and "skip" decoder variants are not offered.
- Odd resolutions work: level ``l + 1`` has size ``ceil(r_l / 2)`` (28 -> 14 -> 7 -> 4);
  an odd map is padded by repeating its last row / column before pooling, and the
  decoder's nearest-neighbour upsampling is cropped to the skip's size, so the two
  stay aligned. EDM requires powers of two.
- The zero-initialised layers (``conv3x3_1`` and ``proj`` of every block, the output
  conv) start at exactly zero (EDM: Xavier times 1e-5), so the initial output is 0.
- The positional embedding is :func:`genmodels.nets.embed.sinusoidal_embedding`:
  frequencies ``10000^(-k / (C/2))`` instead of EDM's ``endpoint=True`` spacing
  ``10000^(-k / (C/2 - 1))`` and ``[cos, sin]`` order instead of ``[sin, cos]`` (a
  permutation the next dense layer absorbs).
- No augmentation-label input (EDM's ``augment_dim``, 9 for CIFAR-10: 1,152 weights) and
  no label dropout; classifier-free guidance can pass zero labels (what ``None`` means).
- GroupNorm uses ``min(32, C // 4)`` groups (EDM's rule), lowered to the nearest divisor
  of ``C`` when that does not divide it (EDM would fail there).
- Dropout randomness comes from the ``rngs`` call argument (nothing is stored in the
  module), so a pure training step can derive it from its step key.

With EDM's CIFAR-10 sizes (:meth:`UNetConfig.ddpmpp_cifar10`) the parameter count is
55,732,739 unconditional and 55,734,147 with 10 classes: EDM's network minus its
1,152 augmentation weights (the "56M" DDPM++ of the EDM paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from genmodels.core.types import Array
from genmodels.nets.embed import sinusoidal_embedding

__all__ = ["UNet", "UNetBlock", "UNetConfig", "downsample2x", "group_count", "upsample2x"]

#: 1/sqrt(2): keeps the variance of ``skip + residual`` at that of each term (EDM).
SKIP_SCALE = math.sqrt(0.5)

_xavier = nnx.initializers.xavier_uniform()
# EDM's init_attn: Xavier scaled by sqrt(0.2) in weight, i.e. 0.2 in variance.
_xavier_attn = nnx.initializers.variance_scaling(0.2, "fan_avg", "uniform")
_zeros = nnx.initializers.zeros_init()


@dataclass(frozen=True)
class UNetConfig:
    """Sizes of a :class:`UNet`. The defaults are a small MNIST network (1.75M
    parameters) that trains on a CPU: 28 x 28 x 1, levels 28 / 14 / 7 with 32 / 64 / 64
    channels, two blocks per level, attention at 7 x 7 only (49 tokens; 14 x 14 would
    cost 16 times as much). :meth:`ddpmpp_cifar10` gives EDM's CIFAR-10 DDPM++ sizes.

    Attributes:
      in_channels: image channels at the input.
      out_channels: channels of the output.
      img_resolution: height = width of the input; level ``l`` has resolution
        ``ceil(img_resolution / 2^l)``.
      model_channels: base width ``C``.
      channel_mult: per-level width multipliers (one level per entry).
      num_blocks: residual blocks per level in the encoder (the decoder has one more).
      attn_resolutions: resolutions whose blocks get self-attention (the first block of
        the decoder's lowest level always has it, as in EDM).
      dropout: dropout probability inside the residual blocks (EDM CIFAR-10: 0.13).
      embedding: ``"positional"`` (DDPM++: sinusoids of ``c_noise``) or ``"fourier"``
        (NCSN++: random Fourier features, frequencies ``N(0, fourier_scale^2)``, fixed).
      label_dim: number of classes of the one-hot ``class_labels`` (0: unconditional).
      channel_mult_emb: embedding width is ``C * channel_mult_emb`` (EDM: 4).
      channel_mult_noise: noise-feature width is ``C * channel_mult_noise`` (DDPM++: 1).
      num_heads: attention heads (DDPM++: 1).
      adaptive_scale: ``False`` adds the embedding before ``GN_1`` (DDPM++); ``True``
        uses it as a scale and shift after ``GN_1`` (ADM / EDM's ``DhariwalUNet``).
      fourier_scale: standard deviation of the Fourier frequencies (EDM: 16).
    """

    in_channels: int = 1
    out_channels: int = 1
    img_resolution: int = 28
    model_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (7,)
    dropout: float = 0.1
    embedding: str = "positional"
    label_dim: int = 0
    channel_mult_emb: int = 4
    channel_mult_noise: int = 1
    num_heads: int = 1
    adaptive_scale: bool = False
    fourier_scale: float = 16.0

    @staticmethod
    def fit_options(h: int, w: int, c: int) -> str:
        """The command-line options that size a UNet recipe for ``h x w x c`` images."""
        square = "" if h == w else f" (the UNet needs square images, these are {h} x {w})"
        return f"--net.img-resolution {h} --net.in-channels {c} --net.out-channels {c}{square}"

    @classmethod
    def ddpmpp_cifar10(cls, label_dim: int = 0) -> UNetConfig:
        """EDM's CIFAR-10 DDPM++ network (``--arch=ddpmpp``; Karras et al. 2022, Table 7).

        Args:
          label_dim: 0 for the unconditional model, 10 for the class-conditional one.

        Returns:
          32 x 32 x 3, C = 128, channel_mult (2, 2, 2), 4 blocks per level, attention at
          16 x 16, dropout 0.13, positional embedding (55.7M parameters).
        """
        return cls(
            in_channels=3,
            out_channels=3,
            img_resolution=32,
            model_channels=128,
            channel_mult=(2, 2, 2),
            num_blocks=4,
            attn_resolutions=(16,),
            dropout=0.13,
            embedding="positional",
            label_dim=label_dim,
        )

    def make(self, rngs: nnx.Rngs) -> UNet:
        """The :class:`UNet` with these sizes."""
        return UNet(self, rngs=rngs)


def group_count(channels: int) -> int:
    """Number of GroupNorm groups (EDM: at most 32 groups of at least 4 channels).

    Args:
      channels: channels to normalise.

    Returns:
      ``min(32, channels // 4)`` (at least 1), lowered to the nearest divisor of
      ``channels`` (e.g. 32 -> 8, 96 -> 24, 128 -> 32, 132 -> 22).
    """
    g = max(1, min(32, channels // 4))
    while channels % g:
        g -= 1
    return g


def downsample2x(x: Array) -> Array:
    """2 x 2 average pooling with stride 2 (EDM's FIR ``[1, 1]`` downsampling).

    An odd height or width is first padded by repeating the last row / column, so the
    output has ``ceil(H / 2) x ceil(W / 2)`` pixels.

    Args:
      x: [B, H, W, C].

    Returns:
      [B, ceil(H/2), ceil(W/2), C].
    """
    b, h, w, c = x.shape
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return x.reshape(b, (h + 1) // 2, 2, (w + 1) // 2, 2, c).mean(axis=(2, 4))


def upsample2x(x: Array, size: tuple[int, int]) -> Array:
    """Nearest-neighbour 2x upsampling cropped to ``size`` (inverse of :func:`downsample2x`).

    Args:
      x: [B, h, w, C].
      size: target ``(H, W)`` with ``ceil(H/2) = h`` and ``ceil(W/2) = w``.

    Returns:
      [B, H, W, C].
    """
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # [B, 2h, 2w, C]
    return x[:, : size[0], : size[1]]


def _norm(channels: int, rngs: nnx.Rngs) -> nnx.GroupNorm:
    return nnx.GroupNorm(channels, num_groups=group_count(channels), epsilon=1e-6, rngs=rngs)


def _conv3x3(cin: int, cout: int, rngs: nnx.Rngs, zero: bool = False) -> nnx.Conv:
    return nnx.Conv(
        cin, cout, (3, 3), padding="SAME", kernel_init=_zeros if zero else _xavier, rngs=rngs
    )


def _dense(cin: int, cout: int, rngs: nnx.Rngs, init=_xavier) -> nnx.Linear:
    # Also the 1 x 1 convolutions (skip projection, qkv, proj): same parameters, a matmul.
    return nnx.Linear(cin, cout, kernel_init=init, rngs=rngs)


class UNetBlock(nnx.Module):
    """Residual block with optional 2x resampling and self-attention (module docstring).

    Args:
      cin, cout: channels in and out.
      emb_dim: width of the conditioning embedding.
      resample: ``None``, ``"down"`` or ``"up"``.
      attention: add a self-attention layer after the residual part.
      num_heads: attention heads (must divide ``cout``).
      dropout: dropout probability before the second convolution.
      adaptive_scale: scale-and-shift conditioning instead of an additive one.
      rngs: parameter RNGs.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        emb_dim: int,
        *,
        resample: str | None = None,
        attention: bool = False,
        num_heads: int = 1,
        dropout: float = 0.0,
        adaptive_scale: bool = False,
        rngs: nnx.Rngs,
    ):
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        if attention and cout % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide {cout} channels")
        self.cin, self.cout = cin, cout
        self.resample = resample
        self.attention = attention
        self.num_heads = num_heads
        self.adaptive_scale = adaptive_scale
        self.norm0 = _norm(cin, rngs)
        self.conv0 = _conv3x3(cin, cout, rngs)
        self.affine = _dense(emb_dim, cout * (2 if adaptive_scale else 1), rngs)
        self.norm1 = _norm(cout, rngs)
        self.dropout = nnx.Dropout(dropout)
        self.conv1 = _conv3x3(cout, cout, rngs, zero=True)
        # EDM's resample_proj=True: a 1 x 1 projection whenever the shape changes.
        self.skip = _dense(cin, cout, rngs) if (cin != cout or resample) else None
        if attention:
            self.norm2 = _norm(cout, rngs)
            self.qkv = _dense(cout, 3 * cout, rngs, _xavier_attn)
            self.proj = _dense(cout, cout, rngs, _zeros)

    def _resample(self, x: Array, size: tuple[int, int] | None) -> Array:
        if self.resample == "down":
            return downsample2x(x)
        if self.resample == "up":
            return upsample2x(x, size)
        return x

    def __call__(
        self,
        x: Array,
        emb: Array,
        *,
        size: tuple[int, int] | None = None,
        train: bool = False,
        rngs: nnx.Rngs | None = None,
    ) -> Array:
        """Args:
          x: [B, H, W, cin].
          emb: [B, emb_dim] conditioning embedding.
          size: output ``(H', W')`` of an ``"up"`` block (the decoder's skip size).
          train: apply dropout.
          rngs: dropout randomness (stream ``"dropout"``), needed when ``train``.

        Returns:
          [B, H', W', cout] with ``H' = H`` (no resampling), ``ceil(H/2)`` (down) or
          ``size[0]`` (up).
        """
        if self.resample == "up" and size is None:
            raise ValueError("an 'up' block needs the output size")
        orig = x
        h = self._resample(jax.nn.silu(self.norm0(x)), size)
        h = self.conv0(h)  # [B, H', W', cout]
        params = self.affine(emb)[:, None, None, :]  # [B, 1, 1, cout or 2 cout]
        if self.adaptive_scale:
            scale, shift = jnp.split(params, 2, axis=-1)
            h = jax.nn.silu(self.norm1(h) * (1.0 + scale) + shift)
        else:
            h = jax.nn.silu(self.norm1(h + params))
        h = self.dropout(h, deterministic=not train, rngs=rngs)
        h = self.conv1(h)
        skip = self._resample(orig, size)
        if self.skip is not None:
            skip = self.skip(skip)
        x = (h + skip) * SKIP_SCALE  # [B, H', W', cout]
        if self.attention:
            b, hh, ww, c = x.shape
            heads = self.num_heads
            qkv = self.qkv(self.norm2(x)).reshape(b, hh * ww, 3, heads, c // heads)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, T, heads, c/heads]
            a = jax.nn.dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(c/heads)) v
            x = (x + self.proj(a.reshape(b, hh, ww, c))) * SKIP_SCALE
        return x


class FourierFrequencies(nnx.Variable):
    """Fixed random frequencies of the Fourier noise embedding (not trained)."""


class UNet(nnx.Module):
    """EDM / DDPM++ UNet ``F(x, c_noise, class) -> [B, H, W, out_channels]`` (module docstring).

    Args:
      config: sizes (:class:`UNetConfig`).
      rngs: parameter RNGs (stream ``params``; also draws the Fourier frequencies).
    """

    def __init__(self, config: UNetConfig, *, rngs: nnx.Rngs):
        cfg = config
        if cfg.embedding not in ("positional", "fourier"):
            raise ValueError(f"embedding must be 'positional' or 'fourier', got {cfg.embedding!r}")
        if not cfg.channel_mult:
            raise ValueError("channel_mult needs at least one level")
        if cfg.img_resolution < 1 or cfg.num_blocks < 1:
            raise ValueError("img_resolution and num_blocks must be positive")
        self.config = cfg
        noise_dim = cfg.model_channels * cfg.channel_mult_noise
        if noise_dim % 2:
            raise ValueError(f"noise embedding width {noise_dim} must be even")
        emb_dim = cfg.model_channels * cfg.channel_mult_emb
        kw = dict(
            num_heads=cfg.num_heads,
            dropout=cfg.dropout,
            adaptive_scale=cfg.adaptive_scale,
            rngs=rngs,
        )

        # Noise / label mapping.
        if cfg.embedding == "fourier":
            freqs = cfg.fourier_scale * jax.random.normal(rngs.params(), (noise_dim // 2,))
            self.freqs = FourierFrequencies(freqs)
        self.map_label = _dense(cfg.label_dim, noise_dim, rngs) if cfg.label_dim else None
        self.map_layer0 = _dense(noise_dim, emb_dim, rngs)
        self.map_layer1 = _dense(emb_dim, emb_dim, rngs)

        # Resolution of every level: ceil halving, so odd sizes work.
        res = [cfg.img_resolution]
        for _ in cfg.channel_mult[1:]:
            res.append((res[-1] + 1) // 2)
        self.resolutions = tuple(res)

        # Encoder: every block output (and the first conv's) is a skip.
        self.enc_conv = _conv3x3(cfg.in_channels, cfg.model_channels, rngs)
        enc = []
        skips = [cfg.model_channels]
        c = cfg.model_channels
        for level, mult in enumerate(cfg.channel_mult):
            if level > 0:
                enc.append(UNetBlock(c, c, emb_dim, resample="down", **kw))
                skips.append(c)
            for _ in range(cfg.num_blocks):
                cout = cfg.model_channels * mult
                attn = res[level] in cfg.attn_resolutions
                enc.append(UNetBlock(c, cout, emb_dim, attention=attn, **kw))
                c = cout
                skips.append(c)
        self.enc = nnx.List(enc)

        # Decoder: static flags say which blocks concatenate a skip / upsample.
        dec, takes_skip, up_level = [], [], []
        last = len(cfg.channel_mult) - 1
        for level in range(last, -1, -1):
            mult = cfg.channel_mult[level]
            if level == last:
                dec.append(UNetBlock(c, c, emb_dim, attention=True, **kw))
                dec.append(UNetBlock(c, c, emb_dim, **kw))
                takes_skip += [False, False]
                up_level += [None, None]
            else:
                dec.append(UNetBlock(c, c, emb_dim, resample="up", **kw))
                takes_skip.append(False)
                up_level.append(level)
            for idx in range(cfg.num_blocks + 1):
                cin = c + skips.pop()
                c = cfg.model_channels * mult
                attn = idx == cfg.num_blocks and res[level] in cfg.attn_resolutions
                dec.append(UNetBlock(cin, c, emb_dim, attention=attn, **kw))
                takes_skip.append(True)
                up_level.append(None)
        assert not skips
        self.dec = nnx.List(dec)
        self.dec_takes_skip = tuple(takes_skip)
        self.dec_up_level = tuple(up_level)
        self.out_norm = _norm(c, rngs)
        self.out_conv = _conv3x3(c, cfg.out_channels, rngs, zero=True)

    def embed(self, noise_labels: Array, class_labels: Array | None = None) -> Array:
        """Conditioning embedding of the noise level (and class).

        Args:
          noise_labels: [B] (EDM: ``c_noise = ln(sigma) / 4``).
          class_labels: [B, label_dim] one-hot (or soft) labels; ``None`` means zeros.

        Returns:
          [B, model_channels * channel_mult_emb].
        """
        cfg = self.config
        t = jnp.asarray(noise_labels, jnp.float32)  # [B]
        if cfg.embedding == "fourier":
            args = t[:, None] * (2.0 * jnp.pi * self.freqs[...])[None]  # [B, noise_dim/2]
            e = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
        else:
            e = sinusoidal_embedding(t, cfg.model_channels * cfg.channel_mult_noise)
        if self.map_label is not None:  # None is the all-zero label (EDM's EDMPrecond)
            if class_labels is None:
                class_labels = jnp.zeros((t.shape[0], cfg.label_dim), jnp.float32)
            y = jnp.asarray(class_labels, jnp.float32)  # [B, label_dim]
            if y.shape != (t.shape[0], cfg.label_dim):
                raise ValueError(
                    f"class_labels must be [B, {cfg.label_dim}] = {(t.shape[0], cfg.label_dim)},"
                    f" got {y.shape}"
                )
            # sqrt(label_dim) gives one-hot labels unit variance per entry (EDM).
            e = e + self.map_label(y * math.sqrt(cfg.label_dim))
        e = jax.nn.silu(self.map_layer0(e))
        return jax.nn.silu(self.map_layer1(e))  # [B, emb_dim]

    def __call__(
        self,
        x: Array,
        noise_labels: Array,
        class_labels: Array | None = None,
        *,
        train: bool = False,
        rngs: nnx.Rngs | Array | None = None,
    ) -> Array:
        """Apply the network.

        Args:
          x: [B, H, W, in_channels] NHWC images (EDM: ``c_in x``), ``H = W = img_resolution``.
          noise_labels: [B] or scalar noise conditioning (EDM: ``ln(sigma) / 4``).
          class_labels: [B, label_dim] one-hot labels; ignored when ``label_dim == 0``;
            ``None`` with ``label_dim > 0`` means the all-zero (unconditional) label.
          train: enable dropout.
          rngs: dropout randomness when ``train`` and ``dropout > 0``: an ``nnx.Rngs``
            with a ``dropout`` (or default) stream, or a PRNG key.

        Returns:
          [B, H, W, out_channels].
        """
        cfg = self.config
        if x.ndim != 4 or x.shape[-1] != cfg.in_channels:
            raise ValueError(f"x must be [B, H, W, {cfg.in_channels}], got {x.shape}")
        if x.shape[1:3] != (cfg.img_resolution, cfg.img_resolution):
            raise ValueError(
                f"x is {x.shape[1]} x {x.shape[2]} but img_resolution is {cfg.img_resolution}"
            )
        if train and cfg.dropout > 0:
            if rngs is None:
                raise ValueError("train=True with dropout > 0 needs rngs (nnx.Rngs or a key)")
            if not isinstance(rngs, nnx.Rngs):
                rngs = nnx.Rngs(dropout=rngs)
        b = x.shape[0]
        t = jnp.broadcast_to(jnp.asarray(noise_labels, jnp.float32).reshape(-1), (b,))
        emb = self.embed(t, class_labels)  # [B, emb_dim]

        h = self.enc_conv(x)  # [B, H, W, C]
        skips = [h]
        for block in self.enc:
            h = block(h, emb, train=train, rngs=rngs)
            skips.append(h)

        for block, takes_skip, up in zip(
            self.dec, self.dec_takes_skip, self.dec_up_level, strict=True
        ):
            if takes_skip:
                h = jnp.concatenate([h, skips.pop()], axis=-1)
            size = None if up is None else (self.resolutions[up],) * 2
            h = block(h, emb, size=size, train=train, rngs=rngs)
        return self.out_conv(jax.nn.silu(self.out_norm(h)))  # [B, H, W, out_channels]
