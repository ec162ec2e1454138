"""Explaining a decision: the prompt, the ``Writer`` protocol and its writers (the LoRA language model in
``generation``, the deterministic composer), the decoding tricks beside plain generation (``drafts``,
``int8``, ``prepared``), grounding in the retrieved passages, the verifier, and the ``Pipeline`` that runs
them in order.
"""
