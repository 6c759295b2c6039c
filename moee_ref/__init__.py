"""MoEE reference implementation (Mixture of Emotion Experts, CVPR 2025; arXiv 2501.01808).

No official code exists; this package follows ``moee_paper.md`` sections 2-4 and documents every
choice the paper leaves open in the module that makes it:

- :mod:`moee_ref.moe`: the Mixture-of-Emotion-Experts layer (gates, routing, supervision).
- :mod:`moee_ref.emotion_latents`: Emotion-to-Latents (label / text / audio -> latent tokens).
- :mod:`moee_ref.emotion2vec`: the paper's audio emotion encoder, loading the official checkpoint.
- :mod:`moee_ref.variants`: the paper's model (``full``), its Table 5 ablations and two options.
- :mod:`moee_ref.unet`: the denoiser additions (reference attention, audio attention, MoE, temporal).
- :mod:`moee_ref.audio`: frozen wav2vec2 features and per-frame audio windows.
- :mod:`moee_ref.model`: the full model (VAE, ReferenceNet, denoiser, audio encoder).
- :mod:`moee_ref.pipeline`: DDIM inference in sliding windows with multi-condition guidance.
- :mod:`moee_ref.train`, :mod:`moee_ref.data`, :mod:`moee_ref.losses`: training with accelerate
  (masked noisy emotion sampling and the per-frame mouth mask in :mod:`moee_ref.data`).
- :mod:`moee_ref.checkpoint`: safetensors checkpoints with optimizer and RNG state.
- :mod:`moee_ref.method`: the ``moee-ref`` method of the benchmark.
- :mod:`moee_bench.bench.perf.moee`: ``moee-bench bench moee`` (speed and memory).
"""

from moee_bench.bench.core.extras import require_extra

require_extra("moee")        # diffusers, transformers, accelerate, the text encoder: pip install 'moee-bench[moee]'

