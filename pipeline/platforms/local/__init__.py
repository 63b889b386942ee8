"""The local platform: LoRA SFT on this machine (PyTorch + PEFT), deployments and export."""
