from loopml.services.metrics.server import main

main()
