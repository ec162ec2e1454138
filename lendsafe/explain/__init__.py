"""Explaining a decision: the prompt, the writers (LoRA language model, deterministic composer), grounding
in the retrieved passages, the verifier, and the ``Pipeline`` that runs them in order.
"""
