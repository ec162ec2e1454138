"""Training the writer: SFT data from verified decisions, LoRA fine-tuning and the fused training step.

Never imported by inference (explain, issue, audit, ui).
"""
