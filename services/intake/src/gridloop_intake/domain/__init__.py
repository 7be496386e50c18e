"""The rules of intake (发现上报), pure: no I/O."""
