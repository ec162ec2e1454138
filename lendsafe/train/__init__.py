"""Training the writer: SFT data from verified decisions, LoRA fine-tuning, and the training step (step
selection and optimizer in ``trainstep``, the fused Granite step in ``fused`` with its ``kernels``, LoRA
``dropout``).

Never imported by inference (explain, issue, audit, ui).
"""
