"""The Docker engine on this server: used as it is, started, or installed offline.

    rules    what to do, decided from preflight's facts (pure): use, start or install;
             which bundled .debs dpkg must install; daemon.json merged with ours
    apply    the engine.* steps (adapter): unpack, dpkg, daemon.json, start; their undo
    unpack   the .debs streamed out of the .bin's engine section, each SHA-256 checked
    api      its HTTP API on the unix socket (adapter), for what must stay off a command
             line: the Swarm join, its token in the request's body
"""
