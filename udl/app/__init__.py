"""The applications built on the engine and the claims: the ``udl`` command (:mod:`udl.app.cli`),
reports (:mod:`udl.app.report`), run comparison (:mod:`udl.app.compare`) and encoder audits
(:mod:`udl.app.audit`). Nothing below this layer imports it.
"""
