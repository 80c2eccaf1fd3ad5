from loopml.services.inference.server import main

main()
