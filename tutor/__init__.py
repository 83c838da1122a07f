"""The ``tutor`` command: its root (:mod:`tutor.cli`) mounts the research commands of
:mod:`training.cli` and the service commands of :mod:`api.cli`; :mod:`tutor.console` is what
both sides share (output, errors, progress, threads)."""
