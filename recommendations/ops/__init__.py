"""Operations: readiness (``health``), Prometheus metrics (``metrics``), alerts (``alerts``), log ids."""
