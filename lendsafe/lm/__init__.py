"""Language-model files shared by inference and training: the bundled base model, LoRA adapter files and
the one lock every model load holds.
"""
