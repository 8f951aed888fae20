"""Pure ``nn.Module`` building blocks of SAM 2. No I/O, no numpy, no user-input validation."""
