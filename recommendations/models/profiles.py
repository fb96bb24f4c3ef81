"""(models of this concern are defined here)"""
__all__: list[str] = []
