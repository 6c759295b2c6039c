"""MoEE reference implementation (Mixture of Emotion Experts, CVPR 2025; arXiv 2501.01808).

No official code exists; this package follows ``moee_paper.md`` sections 2-4 and documents every
choice the paper leaves open in the module that makes it:

- :mod:`moee_ref.moe`: the Mixture-of-Emotion-Experts layer (gates, routing, supervision).
- :mod:`moee_ref.emotion_latents`: Emotion-to-Latents (label / text / audio -> latent tokens).
- :mod:`moee_ref.unet`: the denoiser additions (reference attention, audio attention, MoE, temporal).
- :mod:`moee_ref.model`: the full model (VAE, ReferenceNet, denoiser, audio encoder).
- :mod:`moee_ref.pipeline`: DDIM inference with multi-condition classifier-free guidance.
- :mod:`moee_ref.train`, :mod:`moee_ref.data`: two-stage training with accelerate.
- :mod:`moee_ref.method`: the ``moee-ref`` method of the benchmark.
"""
