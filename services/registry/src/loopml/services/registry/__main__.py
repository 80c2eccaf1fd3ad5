from loopml.services.registry.server import main

main()
