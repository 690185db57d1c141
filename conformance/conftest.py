"""`pytest conformance/`: squall-suite.yaml here lists the scenarios; the squall plugin runs them.

The plugin is registered through the ``pytest11`` entry point of the installed
``squall`` distribution (``pip install -e .``). Options: ``--client``,
``--scenarios 'drain.*'``, ``--scenario-dir DIR`` (your own scenario files instead of
these), ``--timescale``, ``--squall-json``, ``--squall-html``;
``--alluredir`` and ``--junitxml`` work as usual.
"""
